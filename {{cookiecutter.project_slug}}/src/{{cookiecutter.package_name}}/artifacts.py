"""The serving contract: everything a recommender service needs, written and read as one folder.

``save_artifacts`` writes a folder atomically (a temporary sibling renamed into place), so a
reader never sees half an artifact set and a failed save never destroys the previous one.
``load_artifacts`` reads it back and checks every file against ``manifest.json`` (presence,
sha256, shapes); any problem raises ``ArtifactError`` naming the file, what was expected and
what was found.

The folder is written readable by everyone and writable only by its owner (folders 0755,
files 0644) whatever the umask: the runtime image reads it as another user, from a read-only
mount (docs/docker.md). Keep artifacts private with the permissions of the folder that holds them.

Layout of an artifacts folder::

    manifest.json            format version, package/torch/faiss/numpy versions, dims, checksums
    config.json              the training config that produced the embeddings
    user_ids.json            raw user ids; position = dense user index
    item_ids.json            raw item ids; position = dense item index
    user_embeddings.npy      (n_users, dim) float32, the user tower applied to every known user
    item_embeddings.npy      (n_items, dim) float32, the item tower applied to every item
    index.faiss              faiss index over item_embeddings (inner product; CPU form)
    popularity.npy           (n_items,) int64 item indices, most popular first
    popularity_scores.npy    (n_items,) float32 training counts, aligned with popularity.npy
    neighbours.npy           (n_items, n_neighbours) int64 item-graph neighbours, -1 padded
    neighbour_weights.npy    (n_items, n_neighbours) float32 co-occurrence weights
    seen_indptr.npy          (n_users + 1,) int64  CSR row pointers of per-user seen items
    seen_indices.npy         (nnz,) int64          CSR column indices (item indices)
    user_features.npy        (n_users, n_user_features) int64, optional
    user_history.npy         (n_users, L) int64 training items per user, padded with n_items, optional
    <channel>.<what>.npy     arrays a further channel needs (``channel_arrays``), optional

The service answers from these files alone (``channels.load_channels``): user embeddings are
computed for every known user at ``index`` time, so nothing on the request path runs a model
and the service never imports torch. To embed a user whose history changed since, run the
exported user tower (``export``: ``user_tower.onnx`` with onnxruntime, or ``user_tower.pt2``)
with ``user_features`` and ``user_history`` as inputs, in a job of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# rwxr-xr-x / rw-r--r--: what `mkdir` and `open` give under the usual umask 022, set explicitly
# because `tempfile.mkdtemp` makes 0700 folders and a private umask (077) would do the same.
DIR_MODE = 0o755
FILE_MODE = 0o644
_REQUIRED = (
    "config.json",
    "user_ids.json",
    "item_ids.json",
    "user_embeddings.npy",
    "item_embeddings.npy",
    "index.faiss",
    "popularity.npy",
    "popularity_scores.npy",
    "neighbours.npy",
    "neighbour_weights.npy",
    "seen_indptr.npy",
    "seen_indices.npy",
)
_OPTIONAL = ("user_features.npy", "user_history.npy")
_CHANNEL_ARRAY = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.npy")
"""Name of a channel's own array file: ``<channel>.<what>.npy``, e.g. ``ease.weights.npy``."""


class ArtifactError(RuntimeError):
    """An artifacts folder is missing a file, or a file does not match the manifest."""


@dataclass
class Artifacts:
    """A loaded artifacts folder. Indices are dense ints; ``user_ids``/``item_ids`` map back."""

    directory: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    user_ids: list[str]
    item_ids: list[str]
    user_embeddings: np.ndarray
    item_embeddings: np.ndarray
    index: Any  # faiss.Index (CPU); move it to a GPU with retrieval.to_device if wanted
    popularity: np.ndarray
    popularity_scores: np.ndarray
    neighbours: np.ndarray
    neighbour_weights: np.ndarray
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    user_features: np.ndarray | None = None
    user_history: np.ndarray | None = None
    channel_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # "<channel>.<what>.npy"
    user_index: dict[str, int] = field(init=False, repr=False)
    item_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return int(self.item_embeddings.shape[1])

    def seen_items(self, user: int) -> np.ndarray:
        """Dense item indices the user interacted with in training (to exclude from results)."""
        if not 0 <= user < self.n_users:
            raise KeyError(f"user index {user} out of range: expected 0..{self.n_users - 1}")
        return self.seen_indices[self.seen_indptr[user] : self.seen_indptr[user + 1]]


def make_readable(*paths: str | os.PathLike[str]) -> None:
    """Set folders to DIR_MODE and files to FILE_MODE; a folder's contents too, recursively.

    Only for outputs this package wrote itself (an artifacts folder, exported files).
    """
    for path in map(Path, paths):
        if path.is_dir():
            path.chmod(DIR_MODE)
            make_readable(*path.iterdir())
        elif path.is_file():
            path.chmod(FILE_MODE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def seen_to_csr(
    seen: Sequence[np.ndarray] | Sequence[Sequence[int]],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-user lists of item indices -> (indptr, indices) CSR arrays."""
    lengths = np.fromiter((len(s) for s in seen), dtype=np.int64, count=len(seen))
    indptr = np.zeros(len(seen) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    indices = (
        np.concatenate([np.asarray(s, dtype=np.int64) for s in seen])
        if len(seen) and indptr[-1]
        else np.zeros(0, dtype=np.int64)
    )
    return indptr, indices


def _check_shapes(
    n_users: int, n_items: int, arrays: Mapping[str, np.ndarray | None], where: str
) -> None:
    """Every array must agree with the id maps; one message lists all disagreements."""
    expected_rows = {
        "user_embeddings.npy": n_users,
        "item_embeddings.npy": n_items,
        "popularity.npy": n_items,
        "popularity_scores.npy": n_items,
        "neighbours.npy": n_items,
        "neighbour_weights.npy": n_items,
        "seen_indptr.npy": n_users + 1,
        "user_features.npy": n_users,
        "user_history.npy": n_users,
    }
    problems = []
    for name, rows in expected_rows.items():
        arr = arrays.get(name)
        if arr is not None and arr.shape[0] != rows:
            problems.append(f"{name}: expected {rows} rows, found shape {tuple(arr.shape)}")
    ue, ie = arrays.get("user_embeddings.npy"), arrays.get("item_embeddings.npy")
    if ue is not None and ie is not None and ue.shape[1:] != ie.shape[1:]:
        problems.append(
            f"user_embeddings.npy dim {ue.shape[1:]} != item_embeddings.npy dim {ie.shape[1:]}"
        )
    nb, nw = arrays.get("neighbours.npy"), arrays.get("neighbour_weights.npy")
    if nb is not None and nw is not None and nb.shape != nw.shape:
        problems.append(f"neighbours.npy {nb.shape} != neighbour_weights.npy {nw.shape}")
    if problems:
        raise ArtifactError(f"{where}: inconsistent artifacts:\n  " + "\n  ".join(problems))


def save_artifacts(
    out_dir: str | os.PathLike[str],
    *,
    user_ids: Sequence[str],
    item_ids: Sequence[str],
    user_embeddings: np.ndarray,
    item_embeddings: np.ndarray,
    index: Any,
    popularity_scores: np.ndarray,
    neighbours: np.ndarray,
    neighbour_weights: np.ndarray,
    seen: Sequence[np.ndarray] | tuple[np.ndarray, np.ndarray],
    config: Mapping[str, Any],
    user_features: np.ndarray | None = None,
    user_history: np.ndarray | None = None,
    channel_arrays: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write an artifacts folder atomically and return its path.

    ``seen`` is either one array of item indices per user or a ready (indptr, indices) pair.
    ``index`` may be a GPU faiss index; it is stored in CPU form. ``channel_arrays`` holds the
    arrays of further channels by file name, ``<channel>.<what>.npy`` (checked like the rest).
    """
    import faiss

    out = Path(out_dir)
    arrays: dict[str, np.ndarray | None] = {
        "user_embeddings.npy": np.ascontiguousarray(user_embeddings, dtype=np.float32),
        "item_embeddings.npy": np.ascontiguousarray(item_embeddings, dtype=np.float32),
        "popularity_scores.npy": None,
        "popularity.npy": None,
        "neighbours.npy": np.asarray(neighbours, dtype=np.int64),
        "neighbour_weights.npy": np.asarray(neighbour_weights, dtype=np.float32),
        "user_features.npy": None if user_features is None else np.asarray(user_features, np.int64),
        "user_history.npy": None if user_history is None else np.asarray(user_history, np.int64),
    }
    scores = np.asarray(popularity_scores, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    arrays["popularity.npy"] = order.astype(np.int64)
    arrays["popularity_scores.npy"] = scores[order]
    if (
        isinstance(seen, tuple)
        and len(seen) == 2
        and np.ndim(seen[0]) == 1
        and len(seen[0]) == len(user_ids) + 1
    ):
        indptr, indices = (np.asarray(a, dtype=np.int64) for a in seen)
    else:
        indptr, indices = seen_to_csr(seen)  # type: ignore[arg-type]
    arrays["seen_indptr.npy"], arrays["seen_indices.npy"] = indptr, indices
    _check_shapes(len(user_ids), len(item_ids), arrays, where=f"save_artifacts({out})")
    for name, arr in (channel_arrays or {}).items():
        if not _CHANNEL_ARRAY.fullmatch(name) or name in arrays:
            raise ArtifactError(
                f"save_artifacts({out}): channel array {name!r}: expected a new file name "
                "'<channel>.<what>.npy' in lower case, e.g. 'ease.weights.npy'"
            )
        arrays[name] = np.asarray(arr)
    if index.ntotal != len(item_ids):
        raise ArtifactError(
            f"save_artifacts({out}): index holds {index.ntotal} vectors, expected {len(item_ids)} items"
        )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, arr in arrays.items():
            if arr is not None:
                np.save(tmp / name, arr, allow_pickle=False)
        (tmp / "user_ids.json").write_text(json.dumps([str(u) for u in user_ids]), "utf-8")
        (tmp / "item_ids.json").write_text(json.dumps([str(i) for i in item_ids]), "utf-8")
        (tmp / "config.json").write_text(json.dumps(dict(config), indent=2, default=str), "utf-8")
        cpu_index = index
        if hasattr(faiss, "index_gpu_to_cpu") and "Gpu" in type(index).__name__:
            cpu_index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(cpu_index, str(tmp / "index.faiss"))
        manifest = _manifest(tmp, len(user_ids), len(item_ids), arrays)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), "utf-8")
        make_readable(tmp)  # before the rename: the folder appears with its final modes
        # Swap into place: the old folder is removed only once the new one is complete.
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _manifest(
    folder: Path, n_users: int, n_items: int, arrays: Mapping[str, np.ndarray | None]
) -> dict[str, Any]:
    import faiss

    files = {
        p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
        for p in sorted(folder.iterdir())
        if p.name != MANIFEST
    }
    for name, arr in arrays.items():
        if arr is not None:
            files[name]["shape"] = list(arr.shape)
            files[name]["dtype"] = str(arr.dtype)
    emb = arrays["item_embeddings.npy"]
    assert emb is not None
    return {
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "versions": {
            "numpy": np.__version__,
            "faiss": faiss.__version__,
            # The torch that computed the embeddings (loaded by the step that writes them);
            # looked up, not imported, so writing artifacts never pulls torch in.
            **({"torch": sys.modules["torch"].__version__} if "torch" in sys.modules else {}),
        },
        "n_users": n_users,
        "n_items": n_items,
        "dim": int(emb.shape[1]),
        "files": files,
    }


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The folder's manifest, checked without reading the arrays: it exists, parses, has this
    format version and lists the required files, which exist. Cheap enough to run before a
    server starts, so a wrong folder is one line, not a failed startup."""
    folder = Path(directory)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        hint = "the folder does not exist" if not folder.exists() else "no manifest.json in it"
        raise ArtifactError(
            f"{manifest_path}: missing ({hint}). Build artifacts first with "
            "`python -m {{ cookiecutter.package_name }} index` (or `demo`), or point to the right folder."
        )
    try:
        manifest = json.loads(manifest_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r}, expected "
            f"{FORMAT_VERSION}. Rebuild the artifacts with this version of the package."
        )
    files: dict[str, Any] = manifest.get("files", {})
    for name in _REQUIRED:
        if name not in files:
            raise ArtifactError(f"{manifest_path}: does not list required file {name!r}")
    for name in files:
        path = folder / name
        if not path.is_file():
            raise ArtifactError(
                f"{path}: missing, but listed in {MANIFEST}. Rebuild the artifacts."
            )
    return manifest


def load_artifacts(
    directory: str | os.PathLike[str], *, verify_checksums: bool = True
) -> Artifacts:
    """Read an artifacts folder written by ``save_artifacts``; raise ArtifactError on any problem."""
    import faiss

    folder = Path(directory)
    manifest = read_manifest(folder)
    files: dict[str, Any] = manifest["files"]
    if verify_checksums:
        for name, meta in files.items():
            if _sha256(folder / name) != meta["sha256"]:
                raise ArtifactError(
                    f"{folder / name}: sha256 does not match {MANIFEST} (file changed after it "
                    "was written). Rebuild the artifacts; do not edit files in an artifacts folder."
                )

    def npy(name: str) -> np.ndarray | None:
        if name not in files:
            return None
        arr = np.load(folder / name, allow_pickle=False)
        want = files[name].get("shape")
        if want is not None and list(arr.shape) != want:
            raise ArtifactError(f"{folder / name}: shape {list(arr.shape)}, manifest says {want}")
        return arr

    arrays = {name: npy(name) for name in _REQUIRED + _OPTIONAL if name.endswith(".npy")}
    channel_arrays = {name: npy(name) for name in files if _CHANNEL_ARRAY.fullmatch(name)}
    user_ids = json.loads((folder / "user_ids.json").read_text("utf-8"))
    item_ids = json.loads((folder / "item_ids.json").read_text("utf-8"))
    if len(user_ids) != manifest["n_users"] or len(item_ids) != manifest["n_items"]:
        raise ArtifactError(
            f"{folder}: id maps hold {len(user_ids)} users / {len(item_ids)} items, manifest says "
            f"{manifest['n_users']} / {manifest['n_items']}"
        )
    _check_shapes(len(user_ids), len(item_ids), arrays, where=str(folder))
    index = faiss.read_index(str(folder / "index.faiss"))
    if index.ntotal != len(item_ids) or index.d != manifest["dim"]:
        raise ArtifactError(
            f"{folder / 'index.faiss'}: {index.ntotal} vectors of dim {index.d}, expected "
            f"{len(item_ids)} of dim {manifest['dim']}"
        )
    return Artifacts(
        directory=folder,
        manifest=manifest,
        config=json.loads((folder / "config.json").read_text("utf-8")),
        user_ids=[str(u) for u in user_ids],
        item_ids=[str(i) for i in item_ids],
        user_embeddings=arrays["user_embeddings.npy"],  # type: ignore[arg-type]
        item_embeddings=arrays["item_embeddings.npy"],  # type: ignore[arg-type]
        index=index,
        popularity=arrays["popularity.npy"],  # type: ignore[arg-type]
        popularity_scores=arrays["popularity_scores.npy"],  # type: ignore[arg-type]
        neighbours=arrays["neighbours.npy"],  # type: ignore[arg-type]
        neighbour_weights=arrays["neighbour_weights.npy"],  # type: ignore[arg-type]
        seen_indptr=arrays["seen_indptr.npy"],  # type: ignore[arg-type]
        seen_indices=arrays["seen_indices.npy"],  # type: ignore[arg-type]
        user_features=arrays["user_features.npy"],
        user_history=arrays["user_history.npy"],
        channel_arrays=channel_arrays,  # type: ignore[arg-type]
    )
