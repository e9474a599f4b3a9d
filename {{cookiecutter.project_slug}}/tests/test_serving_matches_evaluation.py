"""One recall implementation: the service answers with the ranking evaluation measures.

A small sample goes through the real pipeline (`data`, `train`, `train-sequence`, `index`);
then every user is
served through the app, once per channel (a routes file sends all traffic to it), and each
answer is compared with what evaluation ranks for that user: the same channel classes, fitted
on the run's split, `score` ranked by `evaluation.ranked` with the same seen items masked (the
training history, which is what the artifacts hold). The service process stays free of torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.artifacts import load_artifacts
from {{ cookiecutter.package_name }}.channels.sasrec import sasrec_channel
from {{ cookiecutter.package_name }}.evaluation import ranked, top_k
from {{ cookiecutter.package_name }}.pipeline import build_channels
from {{ cookiecutter.package_name }}.serving import create_app
from {{ cookiecutter.package_name }}.training import load_trained, two_tower_embeddings
from {{ cookiecutter.package_name }}.training.sequence import (
    load_sequence_model,
    pad_left,
    split_sequences,
)

K = 10
CHANNELS = ("popularity", "item_graph", "two_tower", "sasrec")
SAMPLE = ["--n-users", "150", "--n-items", "60"]
SEQUENCE = ["--max-len", "8", "--dim", "16", "--blocks", "1", "--epochs", "2", "--eval-every", "1"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, artifacts folder) of the sample, built by the command line."""
    root = tmp_path_factory.mktemp("one-recall")
    data, runs, artifacts = root / "events.csv", root / "runs", root / "artifacts"
    assert main(["data", "--out", str(data), *SAMPLE]) == 0
    train = ["train", "--data", str(data), "--runs-dir", str(runs), "--run-id", "r"]
    assert main([*train, "--epochs", "2", "--device", "cpu", "--no-progress"]) == 0
    sequence = ["train-sequence", "--data", str(data), "--runs-dir", str(runs), "--run-id", "s"]
    assert main([*sequence, *SEQUENCE, "--device", "cpu", "--no-progress"]) == 0
    # No --sequence-run: index finds the SASRec run beside the two-tower one (same data).
    assert main(["index", "--run", str(runs / "r"), "--out", str(artifacts)]) == 0
    return runs / "r", artifacts


@pytest.fixture(scope="module")
def evaluated(pipeline: tuple[Path, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per channel: (top-K item indices, full scores) for every user, as evaluation ranks them."""
    run, _ = pipeline
    _, model, split = load_trained(run)
    channels = build_channels(split, *two_tower_embeddings(model, split))
    _, sasrec = load_sequence_model(run.parent / "s")
    channels["sasrec"] = sasrec_channel(sasrec, split_sequences(split, ["train"]))
    seen = split.by_user("train")
    users = np.arange(split.n_users)
    return {
        name: (ranked(channel.score, users, seen, split.n_items, K), channel.score(users))
        for name, channel in channels.items()
    }


@pytest.fixture(scope="module")
def served(
    pipeline: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], list[dict]]]:
    """``served(channel)``: the answer of the real app for every user, routed to ``channel``."""
    _, artifacts = pipeline
    user_ids = load_artifacts(artifacts).user_ids
    folder = tmp_path_factory.mktemp("routes")

    def answers(channel: str) -> list[dict]:
        routes = folder / f"{channel}.yml"
        routes.write_text(f"rules:\n  - name: all-{channel}\n    channel: {channel}\n")
        with TestClient(create_app(artifacts, routes_file=routes)) as client:
            request = {"user_type": "returning", "device": "desktop", "action": "browse", "k": K}
            replies = [client.post("/recommend", json={**request, "user_id": u}) for u in user_ids]
        assert all(r.status_code == 200 for r in replies), replies[0].text
        return [r.json() for r in replies]

    yield answers


def item_indices(artifacts: Path) -> dict[str, int]:
    return {item: i for i, item in enumerate(load_artifacts(artifacts).item_ids)}


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_user_gets_the_top_k_evaluation_ranked_for_that_channel(
    channel: str,
    pipeline: tuple[Path, Path],
    evaluated: dict[str, tuple[np.ndarray, np.ndarray]],
    served: Callable[[str], list[dict]],
) -> None:
    index = item_indices(pipeline[1])
    top, scores = evaluated[channel]
    compared = 0
    for user, answer in enumerate(served(channel)):
        got = np.array([index[item["item_id"]] for item in answer["items"]])
        want = top[user][top[user] >= 0]
        assert answer["channel"] == channel or answer["fallback"], answer
        if answer["channel"] != channel:
            continue  # a user without history: item_graph fell back to popularity, and said so
        if "topped up with popularity" in answer["reason"]:
            # The graph reached fewer than K items: those come first, in evaluation's order,
            # and evaluation's next items are ones the graph does not reach (score 0).
            n = sum(1 for item in answer["items"] if item["score"] > 0)
            assert got[:n].tolist() == want[:n].tolist(), (user, answer)
            assert np.all(scores[user][want[n:]] == 0), (user, answer)
        elif channel == "two_tower":
            # faiss and numpy round the last bit differently: equal lists, or equal scores rank
            # by rank where two items tie to within float32 rounding.
            assert got.tolist() == want.tolist() or np.allclose(
                scores[user][got], scores[user][want], atol=1e-5
            ), (user, got, want)
        else:
            assert got.tolist() == want.tolist(), (user, answer)
        served_scores = [item["score"] for item in answer["items"]][: len(want)]
        assert served_scores == pytest.approx(scores[user][got[: len(want)]], abs=1e-5)
        compared += 1
    assert compared >= 0.9 * len(top), f"only {compared} of {len(top)} users compared"


def test_index_says_which_sequence_run_it_served(pipeline: tuple[Path, Path]) -> None:
    run, artifacts = pipeline
    report = json.loads((artifacts / "index_report.json").read_text(encoding="utf-8"))
    assert report["sasrec"].startswith(str(run.parent / "s")), report["sasrec"]
    files = load_artifacts(artifacts).manifest["files"]
    assert {"sasrec.user_states.npy", "sasrec.encoder.npy"} <= set(files)


def test_recent_items_steer_sasrec_to_the_torch_models_answer_for_that_sequence(
    pipeline: tuple[Path, Path], tmp_path: Path
) -> None:
    """The request's items go through the exported encoder (ONNX) in the service; the answer is
    the PyTorch model's top-k for the same sequence, with the history and those items left out."""
    run, artifacts = pipeline
    _, model = load_sequence_model(run.parent / "s")
    art = load_artifacts(artifacts)
    user = next(u for u in range(art.n_users) if len(art.seen_items(u)) >= 3)
    recent = [7, 31, 2, 58, 19]  # oldest first
    request = {"user_id": art.user_ids[user], "user_type": "returning", "device": "desktop",
               "action": "browse", "k": K}  # fmt: skip
    routes = tmp_path / "routes.yml"
    routes.write_text("rules:\n  - name: new-browse\n    user_type: new\n    channel: sasrec\n")
    with TestClient(create_app(artifacts, routes_file=routes)) as client:
        stored = client.post("/recommend", json=request).json()
        steered = client.post(
            "/recommend", json={**request, "recent_items": [art.item_ids[i] for i in recent]}
        ).json()
        visitor = client.post(
            "/recommend",
            json={**request, "user_id": "visitor", "user_type": "new",
                  "recent_items": [art.item_ids[i] for i in recent]},
        ).json()  # fmt: skip
    assert stored["channel"] == steered["channel"] == visitor["channel"] == "sasrec"
    assert stored["rule"] == steered["rule"] == "known-user-browse"
    assert "stored history" in stored["reason"] and "5 recent items" in steered["reason"]

    with torch.no_grad():
        seq = torch.as_tensor(pad_left([np.array(recent)], model.max_len, model.n_items))
        scores = model.scores(seq).numpy()  # (1, n_items)
    for answer, seen in ((steered, art.seen_items(user)), (visitor, np.zeros(0, np.int64))):
        want = top_k(scores, K, [np.concatenate([seen, recent])])[0][0]
        got = np.array([art.item_index[item["item_id"]] for item in answer["items"]])
        assert got.tolist() == want.tolist() or np.allclose(
            scores[0][got], scores[0][want], atol=1e-5
        ), (got, want)
        assert [item["score"] for item in answer["items"]] == pytest.approx(
            scores[0][got], abs=1e-4
        )
        assert not set(got.tolist()) & set(recent)
    assert [i["item_id"] for i in steered["items"]] != [i["item_id"] for i in stored["items"]]
    assert visitor["known_user"] is False and not visitor["fallback"]


def test_malformed_recent_items_get_a_422_and_unknown_ones_are_left_out_with_the_reason(
    pipeline: tuple[Path, Path],
) -> None:
    _, artifacts = pipeline
    art = load_artifacts(artifacts)
    body = {"user_id": art.user_ids[0], "user_type": "returning", "device": "desktop",
            "action": "browse"}  # fmt: skip
    malformed = [
        ([art.item_ids[0]] * 201, "body.recent_items", "at most 200"),
        (["x" * 129], "body.recent_items.0", "at most 128"),
        ([""], "body.recent_items.0", "at least 1"),
        ([3, 4], "body.recent_items.0", "valid string"),
        ([None], "body.recent_items.0", "valid string"),
        (art.item_ids[0], "body.recent_items", "valid list"),
        ({"items": []}, "body.recent_items", "valid list"),
    ]
    known = [art.item_ids[i] for i in (4, 9, 12)]
    with TestClient(create_app(artifacts)) as client:
        for recent, field, message in malformed:
            reply = client.post("/recommend", json={**body, "recent_items": recent})
            assert reply.status_code == 422, (recent, reply.text)
            error = reply.json()["errors"][0]
            assert error["field"] == field and message in error["message"], (recent, error)
            assert len(reply.content) < 4096, f"{len(reply.content)} bytes of error"
        # An item newer than the artifacts (or a typo) must not cost the user the answer.
        ghosts = [known[0], "no-such-item", known[1], *(f"ghost-{i}" for i in range(150)), known[2]]
        mixed = client.post("/recommend", json={**body, "recent_items": ghosts})
        clean = client.post("/recommend", json={**body, "recent_items": known})
        empty = client.post("/recommend", json={**body, "recent_items": []})
        stored = client.post("/recommend", json=body)
    assert mixed.status_code == clean.status_code == empty.status_code == 200, mixed.text
    assert mixed.json()["items"] == clean.json()["items"]
    reason = mixed.json()["reason"]
    assert "left out: 'no-such-item', 'ghost-0', 'ghost-1' (+148 more)" in reason, reason
    assert "3 recent items" in reason and len(reason) < 600
    assert empty.json() == stored.json()  # [] is no recent items: the stored history answers


SERVICE_PROCESS = """
import json, sys
from fastapi.testclient import TestClient
from {{ cookiecutter.package_name }}.serving import create_app

folder, routes = sys.argv[1], sys.argv[2:]
answers = []
for route in routes:
    with TestClient(create_app(folder, routes_file=route)) as client:
        body = {"user_id": "u00001", "user_type": "returning", "device": "desktop",
                "action": "browse"}
        for extra in ({}, {"recent_items": ["i00003", "i00007"]}):  # the ONNX encoder too
            reply = client.post("/recommend", json={**body, **extra})
            answers.append(reply.json()["channel"])
print(json.dumps({"channels": answers, "torch": sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))}))
"""


def test_the_service_process_answers_every_channel_without_importing_torch(
    pipeline: tuple[Path, Path], tmp_path: Path, child_env: Callable[..., dict[str, str]]
) -> None:
    routes = []
    for channel in CHANNELS:
        routes.append(tmp_path / f"{channel}.yml")
        routes[-1].write_text(f"rules:\n  - name: all\n    channel: {channel}\n")
    done = subprocess.run(
        [sys.executable, "-c", SERVICE_PROCESS, str(pipeline[1]), *map(str, routes)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["channels"] == [c for c in CHANNELS for _ in range(2)]
    assert result["torch"] == [], f"the service imported {result['torch'][:5]}"
