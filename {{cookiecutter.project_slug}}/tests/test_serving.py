"""The service answers every route correctly, explains itself, and refuses bad input clearly.

The artifacts are a small synthetic catalog written by the real `save_artifacts` (conftest's
`write_sample_artifacts`: real faiss index, real item graph), loaded by the app's lifespan exactly
as in production. Expected answers are recomputed here with plain numpy, independently of the
serving code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from {{ cookiecutter.package_name }}.artifacts import ArtifactError
from {{ cookiecutter.package_name }}.router import RouteConfigError
from {{ cookiecutter.package_name }}.serving import create_app
from {{ cookiecutter.package_name }}.serving.body import EXCERPT_CHARS, lone_surrogate
from {{ cookiecutter.package_name }}.serving.schemas import MAX_K, RecommendResponse

from hostile import VALID, HostileCase, hostile_corpus, problems, send
from servers import free_port, spawn_server, stop_server, wait_until_ready

N_USERS, N_ITEMS, DIM = 40, 60, 8


@pytest.fixture(scope="module")
def artifacts_dir(
    tmp_path_factory: pytest.TempPathFactory, write_sample_artifacts: Callable[..., Path]
) -> Path:
    folder = tmp_path_factory.mktemp("serving") / "artifacts"
    return write_sample_artifacts(folder, n_users=N_USERS, n_items=N_ITEMS, dim=DIM)


@pytest.fixture(scope="module")
def arrays(artifacts_dir: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.load(p) for p in artifacts_dir.glob("*.npy")}


@pytest.fixture(scope="module")
def client(artifacts_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(artifacts_dir)) as test_client:  # runs the lifespan
        yield test_client


def seen_of(arrays: dict[str, np.ndarray], user: int) -> set[int]:
    start, stop = arrays["seen_indptr"][user], arrays["seen_indptr"][user + 1]
    return set(arrays["seen_indices"][start:stop].tolist())


def ask(client: TestClient, **overrides: object) -> dict:
    body = {
        "user_id": "u1",
        "user_type": "returning",
        "device": "mobile",
        "action": "purchase",
        "k": 10,
    }
    body.update(overrides)
    response = client.post("/recommend", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def item_indices(answer: dict) -> list[int]:
    return [int(item["item_id"][1:]) for item in answer["items"]]


def test_health_and_readiness_report_the_loaded_catalog(
    client: TestClient, artifacts_dir: Path
) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["n_items"] == N_ITEMS and ready.json()["n_users"] == N_USERS
    assert ready.json()["dim"] == DIM
    assert ready.json()["channels"] == ["popularity", "item_graph", "two_tower"]
    assert ready.json()["artifacts"] == artifacts_dir.name  # its name, not the server's path


@pytest.mark.parametrize("user", [1, 2, 17])
def test_a_returning_mobile_buyer_gets_the_exact_two_tower_top_k_without_seen_items(
    client: TestClient, arrays: dict[str, np.ndarray], user: int
) -> None:
    answer = ask(client, user_id=f"u{user}", k=12)
    assert answer["channel"] == "two_tower" and answer["rule"] == "returning-mobile-buy"
    assert not answer["fallback"] and answer["known_user"]
    scores = arrays["item_embeddings"] @ arrays["user_embeddings"][user]  # (n_items,)
    ranked = [
        i for i in np.argsort(-scores, kind="stable").tolist() if i not in seen_of(arrays, user)
    ]
    assert item_indices(answer) == ranked[:12]
    np.testing.assert_allclose(
        [it["score"] for it in answer["items"]], scores[ranked[:12]], atol=1e-5
    )


def test_seen_items_come_back_when_exclude_seen_is_off(
    client: TestClient, arrays: dict[str, np.ndarray]
) -> None:
    answer = ask(client, user_id="u3", k=N_ITEMS, exclude_seen=False)
    assert seen_of(arrays, 3) <= set(item_indices(answer))
    assert len(answer["items"]) == N_ITEMS


def test_an_unknown_user_on_the_two_tower_route_gets_cold_start_popularity(
    client: TestClient, arrays: dict[str, np.ndarray]
) -> None:
    answer = ask(client, user_id="someone-new", k=5)
    assert answer["channel"] == "popularity" and answer["fallback"]
    assert not answer["known_user"]
    assert "not in the model" in answer["reason"] and "cold-start" in answer["reason"]
    assert item_indices(answer) == arrays["popularity"][:5].tolist()


def test_a_new_user_browsing_on_mobile_is_routed_to_popularity_without_a_fallback(
    client: TestClient,
) -> None:
    answer = ask(client, user_id="u9", user_type="new", device="mobile", action="browse", k=5)
    assert answer["channel"] == "popularity" and answer["rule"] == "new-mobile-browse"
    assert not answer["fallback"]


def test_a_vip_click_on_an_item_gets_that_items_graph_neighbours_by_weight(
    client: TestClient, arrays: dict[str, np.ndarray]
) -> None:
    item = next(i for i in range(N_ITEMS) if (arrays["neighbours"][i] >= 0).sum() >= 3)
    answer = ask(
        client,
        user_id="u5",
        user_type="vip",
        device="desktop",
        action="click",
        item_id=f"i{item}",
        k=3,
    )
    assert answer["channel"] == "item_graph" and answer["rule"] == "vip-click"
    nb, w = arrays["neighbours"][item], arrays["neighbour_weights"][item]
    expected = [int(n) for n in nb[np.lexsort((nb, -w))] if n >= 0][:3]
    assert item_indices(answer) == expected
    assert f"neighbours of item 'i{item}'" in answer["reason"]


def test_a_vip_click_without_an_item_uses_the_users_history_and_never_returns_it(
    client: TestClient, arrays: dict[str, np.ndarray]
) -> None:
    answer = ask(client, user_id="u2", user_type="vip", device="tablet", action="click", k=20)
    assert answer["channel"] == "item_graph"
    assert "history" in answer["reason"]
    assert not set(item_indices(answer)) & seen_of(arrays, 2)
    assert len(answer["items"]) == 20  # topped up with popularity when the graph runs short


def test_a_vip_click_with_nothing_to_seed_the_graph_falls_back_to_popularity(
    client: TestClient,
) -> None:
    answer = ask(
        client,
        user_id="ghost",
        user_type="vip",
        device="mobile",
        action="click",
        item_id="no-such-item",
    )
    assert answer["channel"] == "popularity" and answer["fallback"]
    assert "'no-such-item' is not in the catalog" in answer["reason"]


def test_an_unknown_device_is_served_by_the_fallback_with_the_value_named(
    client: TestClient,
) -> None:
    answer = ask(client, device="smartwatch")
    assert answer["channel"] == "popularity" and answer["rule"] == "fallback"
    assert "device 'smartwatch'" in answer["reason"]


def test_every_answer_has_unique_items_in_non_increasing_score_order(client: TestClient) -> None:
    for overrides in (
        {},
        {"user_type": "vip", "action": "click"},
        {"user_type": "new", "device": "desktop"},
        {"user_id": "nobody"},
    ):
        answer = ask(client, k=MAX_K, **overrides)
        ids = [it["item_id"] for it in answer["items"]]
        scores = [it["score"] for it in answer["items"]]
        assert len(ids) == len(set(ids)) > 0
        if answer["channel"] != "item_graph":  # graph lists end with a popularity top-up
            assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"k": 0}, "body.k"),
        ({"k": MAX_K + 1}, "body.k"),
        ({"k": "ten"}, "body.k"),
        ({"user_id": ""}, "body.user_id"),
        ({"device": "mobile phone!"}, "body.device"),
        ({"colour": "red"}, "body.colour"),
        ({"user_id": None}, "body.user_id"),
        ({"k": "10"}, "body.k"),
        ({"k": 2.5}, "body.k"),
        ({"exclude_seen": 0}, "body.exclude_seen"),
    ],
    ids=[
        "k-zero",
        "k-too-big",
        "k-not-int",
        "empty-user",
        "bad-device",
        "extra-field",
        "null-user",
        "k-as-string",
        "k-fraction",
        "bool-as-int",
    ],
)
def test_invalid_requests_get_422_with_the_field_and_a_readable_message(
    client: TestClient, change: dict, field: str
) -> None:
    body = {"user_id": "u1", "user_type": "returning", "device": "mobile", "action": "purchase"}
    body.update(change)
    response = client.post("/recommend", json=body)
    assert response.status_code == 422
    payload = response.json()
    assert [e["field"] for e in payload["errors"]] == [field]
    assert payload["errors"][0]["message"]
    assert payload["detail"] == "1 invalid field in the request; see 'errors'."


def test_a_whole_number_written_as_a_float_is_a_valid_k_as_json_schema_says(
    client: TestClient,
) -> None:
    assert len(ask(client, k=7.0)["items"]) == 7


def test_a_body_that_is_not_text_gets_a_documented_400(client: TestClient) -> None:
    response = client.post(
        "/recommend", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    schema = client.get("/openapi.json").json()
    assert "400" in schema["paths"]["/recommend"]["post"]["responses"]


def test_a_missing_field_and_malformed_json_are_422_too(client: TestClient) -> None:
    missing = client.post("/recommend", json={"user_id": "u1"})
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {
        "body.user_type",
        "body.device",
        "body.action",
    }
    broken = client.post(
        "/recommend", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 422
    assert "JSON" in broken.json()["errors"][0]["message"]


def test_the_openapi_schema_documents_k_bounds_and_the_422_body(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    request = schema["components"]["schemas"]["RecommendRequest"]["properties"]["k"]
    assert (request["minimum"], request["maximum"]) == (1, MAX_K)
    responses = schema["paths"]["/recommend"]["post"]["responses"]
    assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ValidationErrorBody"
    )


def test_big_catalogs_are_searched_in_the_thread_pool_with_the_same_answers(
    artifacts_dir: Path, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from {{ cookiecutter.package_name }}.serving import app as app_module

    monkeypatch.setattr(app_module, "OFFLOAD_ABOVE_ITEMS", N_ITEMS - 1)
    with TestClient(create_app(artifacts_dir)) as offloading:
        assert offloading.app.state.offload and not client.app.state.offload
        for overrides in ({}, {"user_type": "vip", "action": "click"}, {"user_id": "nobody"}):
            assert ask(offloading, **overrides) == ask(client, **overrides)


def test_routes_from_a_config_file_change_the_channel_without_code(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "rules:\n  - {device: tablet, channel: popularity, name: tablet-pop}\n", encoding="utf-8"
    )
    with TestClient(create_app(artifacts_dir, routes_file=routes)) as custom:
        answer = ask(custom, device="tablet")
        assert answer["channel"] == "popularity" and answer["rule"] == "tablet-pop"


def test_startup_fails_naming_the_missing_artifacts_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(
            ArtifactError, match=r"manifest\.json: missing \(the folder does not exist\)"
        ),
        TestClient(create_app(tmp_path / "nowhere")),
    ):
        pass


def test_startup_fails_naming_a_missing_artifact_file(
    tmp_path: Path, write_sample_artifacts: Callable[..., Path]
) -> None:
    broken = write_sample_artifacts(tmp_path / "artifacts")
    (broken / "index.faiss").unlink()
    with (
        pytest.raises(ArtifactError, match=r"index\.faiss: missing"),
        TestClient(create_app(broken)),
    ):
        pass


def test_startup_fails_naming_a_file_that_does_not_match_the_manifest(
    tmp_path: Path, write_sample_artifacts: Callable[..., Path]
) -> None:
    broken = write_sample_artifacts(tmp_path / "artifacts")
    np.save(broken / "popularity.npy", np.arange(N_ITEMS + 1, dtype=np.int64))
    with (
        pytest.raises(ArtifactError, match=r"popularity\.npy: sha256 does not match"),
        TestClient(create_app(broken)),
    ):
        pass


def test_startup_fails_naming_a_bad_routes_file(artifacts_dir: Path, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(json.dumps({"rules": [{"channel": "magic"}]}), encoding="utf-8")
    with (
        pytest.raises(RouteConfigError, match=r"routes\.yaml.*channel is 'magic'"),
        TestClient(create_app(artifacts_dir, routes_file=routes)),
    ):
        pass


# Hostile input: the corpus lives in tests/hostile.py as data; every case must get its
# status, never a 5xx, and any 4xx as a short JSON body.

CORPUS = hostile_corpus()


@pytest.fixture(scope="module")
def lenient(artifacts_dir: Path) -> Iterator[TestClient]:
    """A client that shows a 500 as a response, as a real server would, instead of raising."""
    with TestClient(create_app(artifacts_dir), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def live_url(artifacts_dir: Path) -> Iterator[str]:
    """`python -m {{ cookiecutter.package_name }} serve` on loopback, as in test_server_process.py."""
    port = free_port()
    process = spawn_server(artifacts_dir, port, capture=True)
    try:
        try:
            wait_until_ready(process, port, 90.0)
        except SystemExit as failure:
            pytest.fail(str(failure))
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_hostile_bodies_get_their_4xx_in_process_never_a_5xx_or_a_long_echo(
    lenient: TestClient, case: HostileCase
) -> None:
    assert problems(case, send(lenient, case)) == []


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_hostile_bodies_get_their_4xx_from_a_real_server_over_loopback(
    live_url: str, case: HostileCase
) -> None:
    with httpx.Client(base_url=live_url, timeout=10.0) as client:
        assert problems(case, send(client, case)) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"k": NaN}', "NaN is not a JSON value"),
        (b'{"k": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"k": 1e400}', "too large for a 64-bit float"),
        (b'{"user_id": "ab\\ud800"}', "lone UTF-16 surrogate \\ud800"),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper than the parser allows"),
        (b'{"k": ' + b"9" * 5000 + b"}", "more than 4300 digits"),
    ],
    ids=["nan", "minus-infinity", "float-overflow", "lone-surrogate", "deep", "huge-int"],
)
def test_json_that_python_reads_but_json_forbids_gets_a_422_naming_the_problem(
    lenient: TestClient, body: bytes, message: str
) -> None:
    response = lenient.post(
        "/recommend", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    assert message in response.json()["errors"][0]["message"]


def test_a_long_bad_value_is_quoted_as_a_short_excerpt_with_its_length(client: TestClient) -> None:
    response = client.post("/recommend", json={**VALID, "device": "d" * 50_000})
    assert response.status_code == 422
    quoted = response.json()["errors"][0]["input"]
    assert quoted.startswith("d" * EXCERPT_CHARS) and quoted.endswith("(50000 characters)")
    assert len(response.content) < 600


def test_thousands_of_bad_fields_are_counted_but_only_the_first_are_listed(
    client: TestClient,
) -> None:
    response = client.post("/recommend", json={**VALID, **{f"f{i}": i for i in range(3000)}})
    assert response.status_code == 422
    payload = response.json()
    assert payload["detail"].startswith("3000 invalid fields in the request; the first ")
    assert 0 < len(payload["errors"]) < 3000 and len(response.content) < 2048


def test_the_body_limit_is_configurable_and_413_names_it(artifacts_dir: Path) -> None:
    with TestClient(create_app(artifacts_dir, max_body_bytes=200)) as small:
        assert small.post("/recommend", json=VALID).status_code == 200
        response = small.post("/recommend", json={**VALID, "item_id": "i" * 128})
        assert response.status_code == 413
        assert "larger than 200 bytes" in response.json()["detail"]


def test_a_bad_body_limit_in_the_environment_is_refused_naming_the_variable(
    artifacts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = "{{ cookiecutter.package_name|upper }}_MAX_BODY_BYTES"
    monkeypatch.setenv(variable, "64k")
    with pytest.raises(ValueError, match=f"{variable}='64k': expected a positive"):
        create_app(artifacts_dir)


@pytest.mark.parametrize(
    ("text", "lone"),
    [
        ('"\\ud83d\\ude00"', None),  # a pair: one emoji
        ('"\\\\ud800"', None),  # an escaped backslash, then the letters ud800
        ('"\\ud800"', "\\ud800"),
        ('"\\udc00\\ud800"', "\\udc00"),
        ('"\\ud800x\\udc00"', "\\ud800"),  # the halves are not adjacent
        ('{"\\ud83d\\ude00": "\\ud83d"}', "\\ud83d"),
    ],
)
def test_lone_surrogates_are_found_and_pairs_and_escaped_backslashes_are_not(
    text: str, lone: str | None
) -> None:
    found = lone_surrogate(text)
    assert (found.group(0) if found else None) == lone


def test_the_fuzz_script_sends_the_hostile_corpus_and_finds_no_5xx(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    summary = tmp_path / "fuzz.json"
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py"
    done = subprocess.run(
        [sys.executable, str(script), "--artifacts", str(artifacts_dir), "--max-examples", "3",
         "--json", str(summary), "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(summary.read_text(encoding="utf-8"))
    assert result["hostile_cases"] == len(CORPUS) and result["hostile_failures"] == []
    assert result["server_errors_5xx"] == 0


# --- retrieve -> rank: the chain as served --------------------------------------------------
# A small sample goes through the real command line (data, train, index, rank); the service
# ranks with the exported ranker, and the answers are compared with the offline chain built
# by ranking/ from the run's split (channels refitted here, not read from the artifacts).

CHAIN_SAMPLE = ["--n-users", "120", "--n-items", "60"]
CHAIN_N = 20  # top-N per channel, small so that bad candidate sets are easy to make
BUY = {"user_type": "returning", "device": "mobile", "action": "purchase"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, artifacts folder with ranker/) of the sample, built by the command line."""
    from {{ cookiecutter.package_name }}.__main__ import main

    root = tmp_path_factory.mktemp("chain")
    data, runs, artifacts = root / "events.csv", root / "runs", root / "artifacts"
    assert main(["data", "--out", str(data), *CHAIN_SAMPLE]) == 0
    train = ["train", "--data", str(data), "--runs-dir", str(runs), "--run-id", "r"]
    assert main([*train, "--epochs", "2", "--device", "cpu", "--no-progress"]) == 0
    assert main(["index", "--run", str(runs / "r"), "--out", str(artifacts)]) == 0
    rank = ["rank", "--run", str(runs / "r"), "--out", str(artifacts / "ranker")]
    assert main([*rank, "--epochs", "2", "--folds", "1", "--n-candidates", str(CHAIN_N)]) == 0
    return runs / "r", artifacts


@pytest.fixture(scope="module")
def chain_client(chain: tuple[Path, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(chain[1])) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def offline_top(chain: tuple[Path, Path]) -> dict[str, tuple[list[str], list[float]]]:
    """Per raw user id: the offline chain's top-10 (item ids, ranker logits), seen items masked."""
    from {{ cookiecutter.package_name }}.channels import (
        ItemGraphChannel,
        PopularityChannel,
        TwoTowerChannel,
    )
    from {{ cookiecutter.package_name }}.channels.ease import EaseChannel
    from {{ cookiecutter.package_name }}.ranking import generate_candidates
    from {{ cookiecutter.package_name }}.ranking.inference import (
        OnnxRanker,
        rank_candidates,
    )
    from {{ cookiecutter.package_name }}.training import (
        load_trained,
        two_tower_embeddings,
    )

    run, artifacts = chain
    report = json.loads((artifacts / "ranker" / "rank_report.json").read_text(encoding="utf-8"))
    _, model, split = load_trained(run)
    users, items = split.train
    fitted = {
        "ease": EaseChannel.fit(users, items, split.n_users, split.n_items, report["ease_l2"]),
        "item_graph": ItemGraphChannel(users, items, split.n_users, split.n_items),
        "popularity": PopularityChannel(items, split.n_items, split.n_users),
        "two_tower": TwoTowerChannel(*two_tower_embeddings(model, split)),
    }
    ranker = OnnxRanker(artifacts / "ranker")
    channels = {name: fitted[name] for name in ranker.channels}
    data = split.data
    everyone = np.arange(split.n_users)
    cand = generate_candidates(
        channels, everyone, split.by_user("train"), CHAIN_N,
        item_features=data.item_features, item_feature_names=data.item_feature_names,
    )  # fmt: skip
    out = {}
    for u in everyone:
        mask = cand.mask[u]
        got = rank_candidates(
            ranker.score, int(u), data.user_features[u], cand.items[u][mask],
            data.item_features, cand.features[u][mask], 10,
        )  # fmt: skip
        out[data.user_ids[u]] = ([data.item_ids[i] for i in got.items], got.scores.tolist())
    return out


def test_a_ranked_route_returns_the_offline_chains_top_k_for_every_user(
    chain_client: TestClient, offline_top: dict[str, tuple[list[str], list[float]]]
) -> None:
    for user_id, (want_items, want_scores) in offline_top.items():
        answer = ask(chain_client, user_id=user_id, **BUY)
        assert [item["item_id"] for item in answer["items"]] == want_items, user_id
        got_scores = [item["score"] for item in answer["items"]]
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-5)


def test_the_explanation_shows_the_recall_and_rank_stages_and_each_items_scores(
    chain_client: TestClient,
) -> None:
    user_id = next(iter(load_user_ids(chain_client)))
    answer = ask(chain_client, user_id=user_id, k=10, **BUY)
    recall, rank = answer["stages"]
    assert recall.startswith("recall: two_tower, item_graph, ease, popularity (")
    assert f"top {CHAIN_N} each" in recall
    assert rank.startswith("rank: ranker ranker/ranker.onnx (10 of "), rank
    # Responses name artifacts relative to their folder, never by the server's own paths.
    folder = chain_client.app.state.recommender.artifacts.directory  # type: ignore[attr-defined]
    for text in (json.dumps(answer), chain_client.get("/readyz").text):
        assert str(folder.parent) not in text and str(folder.resolve().parent) not in text
    assert answer["rule"] == "returning-mobile-buy" and not answer["fallback"]
    channels = {"two_tower", "item_graph", "ease", "popularity"}
    for item in answer["items"]:
        stages = item["stages"]
        assert stages["rank"] == item["score"]
        assert set(stages) - {"rank"} and set(stages) - {"rank"} <= channels
    scores = [item["score"] for item in answer["items"]]
    assert scores == sorted(scores, reverse=True)


def test_every_routes_answer_is_a_valid_response_of_the_documented_schema(
    chain_client: TestClient,
) -> None:
    # The service writes /recommend's JSON itself (serving/app.py answer_json), not through
    # pydantic: each route's answer must still be exactly what the OpenAPI schema promises.
    user_id = next(iter(load_user_ids(chain_client)))
    item_id = load_item_ids(chain_client)[0]
    filled = {"user_type": "vip", "device": "tablet", "action": "click", "k": CHAIN_N + 5}
    for body in (
        {"user_id": user_id, **BUY},  # ranked
        {"user_id": user_id, **filled},  # ranked, then filled from popularity (score null)
        {"user_id": "someone-new", "user_type": "new", "device": "mobile", "action": "browse"},
        {"user_id": user_id, "user_type": "vip", "device": "tablet", "action": "click",
         "item_id": item_id},
        {"user_id": "ünïcode ☃", "user_type": "robot", "device": "fridge", "action": "stare"},
    ):  # fmt: skip
        reply = chain_client.post("/recommend", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.headers["content-type"] == "application/json"
        answer = reply.json()
        assert RecommendResponse.model_validate(answer).model_dump(mode="json") == answer, body
    topped_up = ask(chain_client, user_id=user_id, **filled)["items"]
    assert any(item["score"] is None for item in topped_up)  # the null case was exercised


def test_a_vip_click_ranks_only_what_the_item_graph_recalled(chain_client: TestClient) -> None:
    user_id = next(iter(load_user_ids(chain_client)))
    vip = ask(chain_client, user_id=user_id, user_type="vip", device="tablet", action="click")
    assert vip["stages"][0].startswith("recall: item_graph (")
    assert vip["stages"][1].startswith("rank: ")
    assert all(set(item["stages"]) == {"item_graph", "rank"} for item in vip["items"])


def test_cold_start_and_item_to_item_requests_skip_ranking_and_say_why(
    chain_client: TestClient,
) -> None:
    new = ask(
        chain_client, user_id="someone-new", user_type="new", device="mobile", action="browse"
    )
    assert new["stages"] == ["recall: popularity"] and new["channel"] == "popularity"
    unknown = ask(chain_client, user_id="someone-new", **BUY)
    assert "ranking skipped: user 'someone-new' is not in the model" in unknown["reason"]
    assert unknown["channel"] == "popularity" and unknown["fallback"]
    user_id = next(iter(load_user_ids(chain_client)))
    item = load_item_ids(chain_client)[0]
    clicked = ask(chain_client, user_id=user_id, user_type="vip", device="mobile",
                  action="click", item_id=item)  # fmt: skip
    assert "ranking skipped: item_id" in clicked["reason"]
    assert clicked["stages"] == ["recall: item_graph"]
    with_seen = ask(chain_client, user_id=user_id, exclude_seen=False, **BUY)
    assert "ranking skipped: exclude_seen is false" in with_seen["reason"]
    assert with_seen["stages"] == ["recall: two_tower"]


def test_the_reason_says_what_ran_when_the_routes_plan_did_not(
    chain_client: TestClient, client: TestClient
) -> None:
    """A reason never describes a plan the stages show did not run, and says each thing once."""
    user_id = next(iter(load_user_ids(chain_client)))
    item = load_item_ids(chain_client)[0]
    # Item-to-item on the multi-channel route: the item's graph neighbours, as the reason says.
    clicked = ask(chain_client, user_id=user_id, item_id=item, **BUY)
    assert clicked["channel"] == "item_graph" and clicked["stages"] == ["recall: item_graph"]
    assert f"item_id '{item}' given: item-to-item recall" in clicked["reason"]
    assert f"neighbours of item '{item}'" in clicked["reason"]
    assert all(set(i["stages"]) <= {"item_graph", "popularity"} for i in clicked["items"])
    # An item the catalog lacks is named; the user's candidates are ranked as without it.
    ghost = ask(chain_client, user_id=user_id, item_id="i99999", **BUY)
    assert len(ghost["stages"]) == 2 and ghost["stages"][1].startswith("rank: ")
    assert "item_id 'i99999' is not in the catalog" in ghost["reason"], ghost["reason"]
    # A route that no recall of which reads item_id ranks, and says the item was not used.
    desk = {"user_type": "returning", "device": "desktop", "action": "cart"}
    other = ask(chain_client, user_id=user_id, item_id=item, **desk)
    assert other["stages"][1].startswith("rank: ")
    assert f"item_id '{item}' not used" in other["reason"], other["reason"]
    # ... also where another part of the reason quotes the same string (here the unknown user)
    named = ask(chain_client, user_id=item, item_id=item, **desk)
    assert f"user '{item}' is not in the model" in named["reason"], named["reason"]
    assert f"item_id '{item}' not used" in named["reason"], named["reason"]
    # Ranking skipped on the multi-channel route: one channel answered, and the reason says so.
    for answer in (
        ask(chain_client, user_id=user_id, exclude_seen=False, **BUY),
        ask(client, **BUY),  # no ranker
    ):
        assert answer["stages"] == ["recall: two_tower"]
        assert "multi-channel" not in answer["reason"] and "DNN ranker" not in answer["reason"]
        assert "two_tower recall alone" in answer["reason"], answer["reason"]
    unknown = ask(chain_client, user_id="nobody", **BUY)
    assert unknown["reason"].count("not in the model") == 1, unknown["reason"]
    assert unknown["stages"] == ["recall: popularity"] and "cold-start" in unknown["reason"]


def test_fewer_candidates_than_k_are_ranked_then_filled_from_popularity_with_a_reason(
    chain_client: TestClient,
) -> None:
    user_id = next(iter(load_user_ids(chain_client)))
    k = 50  # the item graph recalls at most CHAIN_N = 20
    vip = ask(chain_client, user_id=user_id, user_type="vip", device="tablet", action="click", k=k)
    assert "ranking: only " in vip["reason"] and "filled from the fallback list" in vip["reason"]
    ranked = [item for item in vip["items"] if item["score"] is not None]
    filled = [item for item in vip["items"] if item["score"] is None]
    assert len(ranked) <= CHAIN_N and filled and all("rank" not in i["stages"] for i in filled)
    ids = [item["item_id"] for item in vip["items"]]
    assert len(ids) == len(set(ids)) <= k


def test_an_empty_candidate_set_degrades_to_popularity_with_a_reason(
    chain_client: TestClient,
) -> None:
    recommender = chain_client.app.state.recommender  # type: ignore[attr-defined]
    seen = recommender.artifacts.seen_items(0)
    fill, _ = recommender.popularity.recommend_to_anyone(5, seen)
    result = recommender.ranking.rank(0, seen, ["sasrec"], 5, fill)
    assert "the ranker has no channel sasrec: left out of recall" in result.notes
    assert "ranking: no candidates for k=5; 5 filled from the fallback list" in result.notes
    assert result.items.tolist() == fill.tolist() and np.isnan(result.scores).all()


def test_without_a_ranker_ranked_routes_answer_in_recall_order_and_say_why(
    client: TestClient,
) -> None:
    answer = ask(client, **BUY)
    assert "ranking skipped: no ranker in ranker/ (run the `rank` stage" in answer["reason"]
    assert answer["stages"] == ["recall: two_tower"]
    assert client.get("/readyz").json()["ranker"].startswith("no ranker in ranker/ ")


def test_an_ease_route_is_served_by_the_rankers_ease_weights_or_else_by_popularity(
    artifacts_dir: Path, chain: tuple[Path, Path], tmp_path: Path
) -> None:
    routes = tmp_path / "ease.yml"
    routes.write_text("rules:\n  - name: all-ease\n    channel: ease\n", encoding="utf-8")
    with TestClient(create_app(artifacts_dir, routes_file=routes)) as plain:
        answer = ask(plain, user_id="u1")
    assert answer["channel"] == "popularity" and answer["fallback"]
    assert "no EASE weights (they come with the ranker): popularity instead" in answer["reason"]
    with TestClient(create_app(chain[1], routes_file=routes)) as ranked:
        recommender = ranked.app.state.recommender  # type: ignore[attr-defined]
        user_id = recommender.artifacts.user_ids[0]
        answer = ask(ranked, user_id=user_id)
        assert "ease" in ranked.get("/readyz").json()["channels"]
    seen = [recommender.artifacts.seen_items(0)]
    want, _ = recommender.channels["ease"].recommend(np.array([0]), 10, seen)
    assert answer["channel"] == "ease" and answer["stages"] == ["recall: ease"]
    items = recommender.artifacts.item_ids
    assert [item["item_id"] for item in answer["items"]] == [items[i] for i in want[0]]


def test_a_ranker_of_other_users_stops_the_startup_naming_its_file(
    artifacts_dir: Path, chain: tuple[Path, Path]
) -> None:
    app = create_app(artifacts_dir, ranker_dir=chain[1] / "ranker")
    with (
        pytest.raises(ArtifactError, match=r"ranker\.json: ranked users differ from"),
        TestClient(app),
    ):
        pass


def test_the_ranking_server_process_never_loads_torch(chain: tuple[Path, Path]) -> None:
    port = free_port()
    process = spawn_server(chain[1], port, capture=True)
    try:
        wait_until_ready(process, port, 90.0)
        maps = Path(f"/proc/{process.pid}/maps")
        if not maps.is_file():
            pytest.skip(f"needs /proc/<pid>/maps (Linux) to read the mapped libraries; no {maps}")
        user_id = json.loads((chain[1] / "user_ids.json").read_text(encoding="utf-8"))[0]
        reply = httpx.post(
            f"http://127.0.0.1:{port}/recommend", json={"user_id": user_id, **BUY}, timeout=10.0
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["stages"][1].startswith("rank: ")
        libraries = {line.split()[-1] for line in maps.read_text().splitlines() if "/" in line}
        assert any("onnxruntime" in lib for lib in libraries), "expected onnxruntime mapped"
        torch = [lib for lib in libraries if "/torch/" in lib or "libtorch" in lib]
        assert not torch, f"the server mapped {torch[:3]}"
    finally:
        stop_server(process)


def test_the_load_benchmark_ranks_under_gunicorn_and_finds_the_rate_that_holds(
    chain: tuple[Path, Path], tmp_path: Path, run_benchmark: Callable[..., object]
) -> None:
    report = tmp_path / "load.json"
    done = run_benchmark(
        "load.py", "--artifacts", str(chain[1]), "--mix", "ranked", "--server", "gunicorn",
        "--workers", "1", "--find-max-rate", "--rates", "10,20", "--duration", "1",
        "--max-p99-ms", "60000", "--json", str(report), cwd=tmp_path,
    )  # fmt: skip
    # The bar is a minute: this checks how the search reports the rate that held, not the
    # machine's latency (a busy CI machine can stall a request for seconds).
    out = done.stdout  # type: ignore[attr-defined]
    assert "gunicorn x1, mix ranked: stages: recall: two_tower, item_graph, ease" in out
    assert " -> rank: ranker " in out
    assert "highest rate with p99 <= 60000.0 ms and no errors: 20/s" in out
    runs = json.loads(report.read_text(encoding="utf-8"))
    assert [r["rate_offered"] for r in runs] == [10.0, 20.0]
    assert all(r["errors"] == 0 and r["k"] == 20 for r in runs)
    # The server's CPU per request, read from /proc for gunicorn's master and its worker.
    assert all(0 < r["server_cpu_ms"] < 1000 for r in runs), runs


def test_the_load_benchmark_refuses_the_ranked_mix_without_a_ranker(
    artifacts_dir: Path, tmp_path: Path
) -> None:
    # Without a ranker the ranked route answers in recall order: measuring it would report
    # the latency of something else under the ranked name.
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "load.py"
    done = subprocess.run(
        [sys.executable, str(script), "--artifacts", str(artifacts_dir), "--mix", "ranked"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{artifacts_dir / 'ranker' / 'ranker.onnx'}: missing" in done.stderr
    assert "`python -m {{ cookiecutter.package_name }} rank`" in done.stderr


def test_the_load_benchmark_times_each_route_in_process(
    chain: tuple[Path, Path], tmp_path: Path, run_benchmark: Callable[..., object]
) -> None:
    report = tmp_path / "cpu.json"
    args = ["--artifacts", str(chain[1]), "--cpu-per-request", "--users", "5"]
    run_benchmark("load.py", *args, "--json", str(report), cwd=tmp_path)
    cpu = json.loads(report.read_text(encoding="utf-8"))
    assert len(cpu) == 5 and all(ms > 0 for ms in cpu.values())
    assert "returning-mobile-buy (multi-channel recall + rank)" in cpu


def load_user_ids(client: TestClient) -> list[str]:
    return client.app.state.recommender.artifacts.user_ids[:3]  # type: ignore[attr-defined]


def load_item_ids(client: TestClient) -> list[str]:
    return client.app.state.recommender.artifacts.item_ids  # type: ignore[attr-defined]
