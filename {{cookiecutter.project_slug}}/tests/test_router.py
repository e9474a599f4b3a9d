"""The router sends each kind of traffic to the channel the routing table documents."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.router import (
    Action,
    Channel,
    Decision,
    Device,
    RouteConfigError,
    Router,
    Rule,
    UserType,
    load_router,
)

ALL_COMBOS = list(itertools.product(UserType, Device, Action))


@pytest.fixture
def router() -> Router:
    return Router()


def test_a_new_user_browsing_on_mobile_gets_cold_start_popularity(router: Router) -> None:
    decision = router.route(UserType.NEW, Device.MOBILE, Action.BROWSE)
    assert decision.channel is Channel.POPULARITY
    assert decision.rule == "new-mobile-browse"
    assert not decision.fallback


def test_a_returning_user_purchasing_on_mobile_gets_the_two_tower_model(router: Router) -> None:
    decision = router.route(UserType.RETURNING, Device.MOBILE, Action.PURCHASE)
    assert decision.channel is Channel.TWO_TOWER
    assert decision.rule == "returning-mobile-buy"


@pytest.mark.parametrize("device", list(Device), ids=lambda d: d.value)
def test_a_vip_clicking_on_any_device_gets_item_graph_recall(
    router: Router, device: Device
) -> None:
    decision = router.route(UserType.VIP, device, Action.CLICK)
    assert decision.channel is Channel.ITEM_GRAPH
    assert decision.rule == "vip-click"
    assert device.value in decision.reason


@pytest.mark.parametrize(
    ("user", "device", "action"),
    [
        (u, d, a)
        for u, d, a in ALL_COMBOS
        if u is not UserType.NEW
        and not (u is UserType.VIP and a is Action.CLICK)
        and not (u is UserType.RETURNING and d is Device.MOBILE and a is Action.PURCHASE)
        and a is not Action.BROWSE
    ],
    ids=lambda v: v.value,
)
def test_other_known_user_traffic_gets_the_two_tower_model(
    router: Router, user: UserType, device: Device, action: Action
) -> None:
    decision = router.route(user, device, action)
    assert decision.channel is Channel.TWO_TOWER
    assert decision.rule == "known-user"


@pytest.mark.parametrize(
    ("user", "device"),
    list(itertools.product([UserType.RETURNING, UserType.VIP], Device)),
    ids=lambda v: v.value,
)
def test_known_users_browsing_get_the_sequence_channel_in_recall_order(
    router: Router, user: UserType, device: Device
) -> None:
    decision = router.route(user, device, Action.BROWSE)
    assert (decision.channel, decision.rule, decision.rank) == (
        Channel.SASREC,
        "known-user-browse",
        False,
    )
    assert decision.channels == (Channel.SASREC,) and not decision.fallback


def test_the_sequence_route_is_overridable_from_the_routes_file(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yml"
    routes.write_text(
        "rules:\n  - name: new-browse-sequence\n    user_type: new\n    action: browse\n"
        "    channel: sasrec\n  - name: browse-two-tower\n    action: browse\n"
        "    channel: two_tower\n    rank: true\n"
    )
    router = load_router(routes)
    assert router.route("new", "mobile", "browse").channel is Channel.SASREC
    known = router.route("returning", "desktop", "browse")
    assert (known.channel, known.rule, known.rank) == (Channel.TWO_TOWER, "browse-two-tower", True)


@pytest.mark.parametrize(
    ("device", "action"),
    [
        (d, a)
        for d, a in itertools.product(Device, Action)
        if (d, a) != (Device.MOBILE, Action.BROWSE)
    ],
    ids=lambda v: v.value,
)
def test_unmatched_new_user_traffic_falls_back_with_the_combination_in_the_reason(
    router: Router, device: Device, action: Action
) -> None:
    decision = router.route(UserType.NEW, device, action)
    assert decision.fallback
    assert decision.channel is Channel.POPULARITY
    assert f"(new, {device.value}, {action.value})" in decision.reason


def test_every_combination_gets_a_decision_and_every_channel_is_reachable(
    router: Router,
) -> None:
    decisions = [router.route(*combo) for combo in ALL_COMBOS]
    assert all(isinstance(d, Decision) and d.reason for d in decisions)
    assert {c for d in decisions for c in d.channels} == set(Channel)
    assert {d.rank for d in decisions} == {True, False}


@pytest.mark.parametrize(
    ("request_", "rule", "recall", "rank"),
    [
        (("new", "mobile", "browse"), "new-mobile-browse", ("popularity",), False),
        (
            ("returning", "mobile", "purchase"),
            "returning-mobile-buy",
            ("two_tower", "item_graph", "ease", "popularity"),
            True,
        ),
        (("vip", "tablet", "click"), "vip-click", ("item_graph",), True),
        (("returning", "desktop", "browse"), "known-user-browse", ("sasrec",), False),
        (("returning", "desktop", "cart"), "known-user", ("two_tower",), True),
        (("vip", "mobile", "cart"), "known-user", ("two_tower",), True),
        (("new", "desktop", "cart"), "fallback", ("popularity",), False),
        (("robot", "mobile", "browse"), "fallback", ("popularity",), False),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else str(v),
)
def test_the_stage_table_picks_recall_channels_and_ranking_per_request(
    router: Router, request_: tuple[str, str, str], rule: str, recall: tuple, rank: bool
) -> None:
    decision = router.route(*request_)
    assert decision.rule == rule
    assert tuple(c.value for c in decision.channels) == recall
    assert decision.channel.value == recall[0]
    assert decision.rank is rank


def test_a_routes_file_sets_several_channels_and_ranking(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "rules:\n"
        "  - name: desk-buy\n    device: desktop\n    action: purchase\n"
        "    channels: [ease, two_tower, ease]\n    rank: true\n"
        "  - name: new-browse\n    user_type: new\n    channel: popularity\n",
        encoding="utf-8",
    )
    router = load_router(routes)
    ranked = router.route("returning", "desktop", "purchase")
    assert ranked.rule == "desk-buy" and ranked.rank
    assert ranked.channels == (Channel.EASE, Channel.TWO_TOWER)  # each once, in order
    plain = router.route("new", "tablet", "browse")
    assert plain.channels == (Channel.POPULARITY,) and not plain.rank  # rank defaults to off


def test_plain_strings_are_accepted_whatever_their_case(router: Router) -> None:
    assert router.route(" VIP", "Tablet", "click") == router.route(
        UserType.VIP, Device.TABLET, Action.CLICK
    )


def test_unknown_values_go_to_the_fallback_and_the_reason_names_each_of_them(
    router: Router,
) -> None:
    decision = router.route("partner", "smartwatch", Action.BROWSE)
    assert decision.fallback
    assert decision.channel is Channel.POPULARITY
    assert "user_type 'partner'" in decision.reason
    assert "device 'smartwatch'" in decision.reason
    assert "action" not in decision.reason.split(":")[0]
    assert "mobile, desktop, tablet" in decision.reason


def test_configured_rules_win_over_the_built_in_routes() -> None:
    router = Router([Rule("graph-for-new-mobile", Channel.ITEM_GRAPH, UserType.NEW, Device.MOBILE)])
    decision = router.route(UserType.NEW, Device.MOBILE, Action.BROWSE)
    assert decision.channel is Channel.ITEM_GRAPH
    assert decision.rule == "graph-for-new-mobile"
    # Traffic the rule does not cover still takes the built-in route.
    assert router.route(UserType.VIP, Device.DESKTOP, Action.CLICK).rule == "vip-click"


def test_the_fallback_channel_is_configurable() -> None:
    router = Router.from_config({"fallback": "item_graph"})
    decision = router.route(UserType.NEW, Device.DESKTOP, Action.CART)
    assert decision.fallback
    assert decision.channel is Channel.ITEM_GRAPH


def test_a_routes_file_overrides_routes_without_editing_code(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "fallback: two_tower\n"
        "rules:\n"
        "  - name: tablet-browse-graph\n"
        "    user_type: '*'\n"
        "    device: tablet\n"
        "    action: browse\n"
        "    channel: item_graph\n",
        encoding="utf-8",
    )
    router = load_router(routes)
    for user in UserType:
        assert router.route(user, Device.TABLET, Action.BROWSE).rule == "tablet-browse-graph"
    assert router.route(UserType.NEW, Device.DESKTOP, Action.CART).channel is Channel.TWO_TOWER


def test_no_routes_file_means_the_built_in_routes() -> None:
    router = load_router(None)
    assert router.rules == ()
    assert router.fallback is Channel.POPULARITY


def test_a_bad_rule_is_reported_with_the_file_and_line(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "rules:\n"
        "  - device: tablet\n"
        "    channel: item_graph\n"
        "  - device: fridge\n"
        "    channel: popularity\n",
        encoding="utf-8",
    )
    with pytest.raises(RouteConfigError) as excinfo:
        load_router(routes)
    message = str(excinfo.value)
    assert f"{routes}:4:" in message
    assert "'fridge'" in message
    assert "mobile, desktop, tablet" in message


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"rules": [{"channel": "magic"}]}, "channel is 'magic'; expected one of popularity"),
        ({"rules": [{"channel": "popularity", "devise": "x"}]}, "unknown key(s) 'devise'"),
        ({"fallback": "random"}, "fallback is 'random'"),
        ({"rule": []}, "unknown key(s) 'rule'"),
        ({"rules": {"channel": "popularity"}}, "'rules' must be a list"),
        ({"rules": ["popularity"]}, "each rule must be a mapping"),
        ({"rules": [{"channels": ["ease", "magic"]}]}, "channels has 'magic'; expected one of"),
        ({"rules": [{"channels": []}]}, "expected a non-empty list"),
        ({"rules": [{"channel": "ease", "channels": ["ease"]}]}, "either 'channel' (one)"),
        ({"rules": [{"rank": True}]}, "either 'channel' (one)"),
        ({"rules": [{"channel": "ease", "rank": "yes"}]}, "rank is 'yes'; expected true"),
    ],
    ids=[
        "channel",
        "rule-key",
        "fallback",
        "top-key",
        "rules-type",
        "rule-type",
        "channels-value",
        "channels-empty",
        "channel-and-channels",
        "no-channel",
        "rank-type",
    ],
)
def test_invalid_configs_say_what_was_expected(config: dict, expected: str) -> None:
    with pytest.raises(RouteConfigError, match=None) as excinfo:
        Router.from_config(config, source="routes.yaml")
    assert expected in str(excinfo.value)
    assert str(excinfo.value).startswith("routes.yaml")


def test_a_missing_routes_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(RouteConfigError, match="cannot read the routes file"):
        load_router(missing)


def test_invalid_yaml_is_reported_with_its_line(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("rules:\n  - channel: [popularity\n", encoding="utf-8")
    with pytest.raises(RouteConfigError, match=r"routes\.yaml:\d+: not valid YAML"):
        load_router(routes)
