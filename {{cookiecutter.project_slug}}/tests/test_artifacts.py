"""The serving contract: save/load round trip and clear failures."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from {{ cookiecutter.package_name }}.artifacts import (
    ArtifactError,
    load_artifacts,
    save_artifacts,
)
from {{ cookiecutter.package_name }}.retrieval import build_index

# The uid the runtime image runs as (Dockerfile APP_UID); it reads artifacts/ from a read-only mount.
IMAGE_UID = 10001


def write(out: Path, n_items: int = 5, **overrides: object) -> Path:
    rng = np.random.default_rng(0)
    items = rng.normal(size=(n_items, 4)).astype(np.float32)
    args: dict[str, object] = dict(
        user_ids=["a", "b"],
        item_ids=[f"i{k}" for k in range(n_items)],
        user_embeddings=rng.normal(size=(2, 4)),
        item_embeddings=items,
        index=build_index(items),
        popularity_scores=np.arange(n_items),
        neighbours=np.zeros((n_items, 2)),
        neighbour_weights=np.ones((n_items, 2)),
        seen=[[1, 2], [3]],
        config={"dim": 4},
        user_history=np.array([[1, 2], [3, n_items]]),
    )
    args.update(overrides)
    return save_artifacts(out, **args)  # type: ignore[arg-type]


def test_saved_artifacts_load_back_with_maps_and_seen_items(tmp_path: Path) -> None:
    art = load_artifacts(write(tmp_path / "a"))
    assert art.n_users == 2 and art.n_items == 5 and art.dim == 4
    assert art.user_index["b"] == 1 and art.item_index["i3"] == 3
    assert art.popularity.tolist() == [4, 3, 2, 1, 0]
    assert art.seen_items(0).tolist() == [1, 2] and art.seen_items(1).tolist() == [3]
    assert art.index.ntotal == 5 and art.user_history is not None
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["dim"] == 4 and "sha256" in manifest["files"]["item_embeddings.npy"]


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    out = write(tmp_path / "a")
    (out / "neighbours.npy").unlink()
    with pytest.raises(
        ArtifactError, match=r"neighbours\.npy: missing, but listed in manifest\.json"
    ):
        load_artifacts(out)


def test_a_changed_file_fails_its_checksum(tmp_path: Path) -> None:
    out = write(tmp_path / "a")
    np.save(out / "item_embeddings.npy", np.zeros((5, 4), np.float32))
    with pytest.raises(ArtifactError, match=r"item_embeddings\.npy: sha256 does not match"):
        load_artifacts(out)


def test_a_folder_without_manifest_says_how_to_build_one(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist.*python -m"):
        load_artifacts(tmp_path / "nowhere")


def test_inconsistent_arrays_are_refused_and_the_previous_artifacts_survive(tmp_path: Path) -> None:
    out = write(tmp_path / "a")
    before = (out / "manifest.json").read_bytes()
    with pytest.raises(
        ArtifactError, match=r"user_embeddings\.npy: expected 2 rows, found shape \(3, 4\)"
    ):
        write(tmp_path / "a", user_embeddings=np.zeros((3, 4)))
    assert (out / "manifest.json").read_bytes() == before
    assert load_artifacts(out).n_items == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_artifacts_are_readable_by_the_image_user_and_writable_only_by_their_owner() -> None:
    # A folder others can enter stands in for the project folder (tmp_path's parents are 0700).
    with tempfile.TemporaryDirectory() as shared:
        os.chmod(shared, 0o755)
        old_umask = os.umask(0o077)  # even a private umask must not hide them from the image
        try:
            out = write(Path(shared) / "artifacts")
        finally:
            os.umask(old_umask)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
        assert stat.S_IMODE(out.stat().st_mode) == 0o755
        assert modes == dict.fromkeys(modes, 0o644)
        if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("sh"):
            # As root the test can be the image's user: list and read everything, write nothing.
            script = 'ls "$1" >/dev/null && cat "$1"/* >/dev/null && ! touch "$1/new" 2>/dev/null'
            done = subprocess.run(
                ["sh", "-c", script, "sh", str(out)],
                user=IMAGE_UID,
                group=IMAGE_UID,
                extra_groups=[],
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, f"as uid {IMAGE_UID}: {done.stderr}"
