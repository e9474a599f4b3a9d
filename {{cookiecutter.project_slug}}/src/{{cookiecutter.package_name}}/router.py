"""Which recall channel answers which traffic.

A request is described by three typed facts: who the user is (`UserType`), where they are
(`Device`) and what they are doing (`Action`). `Router.route` turns them into a `Decision`:
the stages the request gets (the `Channel`s to recall candidates from, and whether the DNN
ranker orders them) and a human-readable reason, which the service returns to the caller so
every recommendation can be explained.

The defaults are a structural `match` (Python 3.10+) that teams start from:

====================  ==========  ==========  ========  ==================================  ====
rule                  user_type   device      action    recall channel(s)                   rank
====================  ==========  ==========  ========  ==================================  ====
new-mobile-browse     new         mobile      browse    popularity (cold start)             no
returning-mobile-buy  returning   mobile      purchase  two_tower, item_graph, ease,        yes
                                                        popularity (multi-channel)
vip-click             vip         any         click     item_graph                          yes
known-user-browse     returning   any         browse    sasrec (the next item after the     no
                      or vip                            recent ones)
known-user            returning   any         any       two_tower                           yes
                      or vip
(fallback)            anything else, or an unknown value      popularity                    no
====================  ==========  ==========  ========  ==================================  ====

"rank" means the candidates of the recall channels are ordered by the exported ranker, which
`python -m {{ cookiecutter.package_name }} rank`
trains; where the service has no ranker, or the user is unknown to it, the recall order answers
and the reason says why.

Browsing is where the order of what a user just looked at says most about the next item, so
known users browsing get the SASRec sequence channel: over the request's `recent_items` when
it sends them, else over the stored history (the state computed at `index` time). Its scores
are not ranker features, so the route answers in recall order; a folder without the sasrec
channel (no `train-sequence` run when `index` ran) answers from two_tower and says so.

The fallback is popularity because it is the one channel that needs nothing from the user
(no history, no embedding), so it can always answer. Unknown values (a new device type
your app starts sending before this code knows it) are routed to the fallback, and the
reason names the value that was not understood instead of failing the request.

Routes are overridable without editing code: a YAML file of rules is checked, in order,
before the built-in `match` (see `load_router`)::

    fallback: popularity
    rules:
      - name: tablet-browse-graph
        user_type: "*"          # "*" or a missing key matches anything
        device: tablet
        action: browse
        channel: item_graph     # one channel, recall order (rank defaults to false)
      - name: desktop-buy-ranked
        device: desktop
        action: purchase
        channels: [two_tower, ease]   # recall from both ...
        rank: true                    # ... and order the candidates with the ranker
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum{% if cookiecutter.python_version != "3.10" %}, StrEnum{% endif %}
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "Action",
    "Channel",
    "Decision",
    "Device",
    "Router",
    "RouteConfigError",
    "Rule",
    "UserType",
    "load_router",
]

WILDCARD = "*"
RULE_KEYS = {"name", "channel", "channels", "rank", "user_type", "device", "action"}
E = TypeVar("E", bound=Enum)
{%- if cookiecutter.python_version == "3.10" %}


class StrEnum(str, Enum):  # noqa: UP042 (enum.StrEnum is Python 3.11+)
    """Members are their string values, like `enum.StrEnum` (3.11+): `str(Device.MOBILE) == "mobile"`."""

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]
{%- endif %}


class UserType(StrEnum):
    """Who is asking: `new` users have no history the model has seen."""

    NEW = "new"
    RETURNING = "returning"
    VIP = "vip"


class Device(StrEnum):
    """Where the request comes from."""

    MOBILE = "mobile"
    DESKTOP = "desktop"
    TABLET = "tablet"


class Action(StrEnum):
    """What the user is doing when the recommendations are shown."""

    BROWSE = "browse"
    CLICK = "click"
    CART = "cart"
    PURCHASE = "purchase"


class Channel(StrEnum):
    """Where candidates come from (see the `channels` package)."""

    POPULARITY = "popularity"
    TWO_TOWER = "two_tower"
    ITEM_GRAPH = "item_graph"
    EASE = "ease"  # served where the ranker's folder holds its weights (`rank` stage)
    SASREC = "sasrec"  # served where `index` found a `train-sequence` run


MULTI_CHANNEL = (Channel.TWO_TOWER, Channel.ITEM_GRAPH, Channel.EASE, Channel.POPULARITY)


@dataclass(frozen=True, slots=True)
class Decision:
    """The routing answer: the stages (recall channels, rank or not), the rule and why.

    `channel` is the first (main) recall channel; `recall` lists every recall channel when
    there are several (empty means just `channel`).
    """

    channel: Channel
    rule: str
    reason: str
    fallback: bool = False
    recall: tuple[Channel, ...] = ()
    rank: bool = False
    situation: str = ""
    """The request as the route saw it (`reason` less the plan): what the service says instead
    of the plan when the plan cannot run (a ranked route without a ranker, say)."""

    @property
    def channels(self) -> tuple[Channel, ...]:
        """Every recall channel of the decision, the main one first."""
        return self.recall or (self.channel,)


@dataclass(frozen=True, slots=True)
class Rule:
    """One configured route; `None` in a field matches any value."""

    name: str
    channel: Channel
    user_type: UserType | None = None
    device: Device | None = None
    action: Action | None = None
    recall: tuple[Channel, ...] = ()
    rank: bool = False

    def matches(self, user_type: UserType, device: Device, action: Action) -> bool:
        return (
            (self.user_type is None or self.user_type is user_type)
            and (self.device is None or self.device is device)
            and (self.action is None or self.action is action)
        )


class RouteConfigError(ValueError):
    """A route configuration that cannot be used; the message says where and how to fix it."""


def _parse(enum: type[E], value: object) -> E | None:  # noqa: UP047 (PEP 695 is 3.12+)
    """The enum member for `value`, or None when the value is not one this code knows."""
    if isinstance(value, enum):
        return value
    try:
        return enum(str(value).strip().lower())
    except ValueError:
        return None


def _choices(enum: type[Enum]) -> str:
    return ", ".join(member.value for member in enum)


def default_route(user_type: UserType, device: Device, action: Action) -> Decision | None:
    """The built-in routes; None when no rule matches (the caller applies the fallback)."""
    match (user_type, device, action):
        case (UserType.NEW, Device.MOBILE, Action.BROWSE):
            return Decision(
                Channel.POPULARITY,
                "new-mobile-browse",
                "new user browsing on mobile: no history yet, so cold-start popularity",
            )
        case (UserType.RETURNING, Device.MOBILE, Action.PURCHASE):
            situation = "returning user purchasing on mobile"
            return Decision(
                Channel.TWO_TOWER,
                "returning-mobile-buy",
                f"{situation}: multi-channel recall, then the DNN ranker",
                recall=MULTI_CHANNEL,
                rank=True,
                situation=situation,
            )
        case (UserType.VIP, _, Action.CLICK):
            situation = f"VIP clicking on {device.value}"
            return Decision(
                Channel.ITEM_GRAPH,
                "vip-click",
                f"{situation}: items co-engaged with the clicked item, then the DNN ranker",
                rank=True,
                situation=situation,
            )
        case (UserType.RETURNING | UserType.VIP, _, Action.BROWSE):
            return Decision(
                Channel.SASREC,
                "known-user-browse",
                f"{user_type.value} user browsing on {device.value}: the next item follows "
                "from the recent ones, so SASRec sequence recall",
            )
        case (UserType.RETURNING | UserType.VIP, _, _):
            situation = f"{user_type.value} user ({device.value}, {action.value})"
            return Decision(
                Channel.TWO_TOWER,
                "known-user",
                f"{situation}: history exists, so personalised two-tower recall, then the DNN "
                "ranker",
                rank=True,
                situation=situation,
            )
        case _:
            return None


class Router:
    """Routes requests: configured rules first, then `default_route`, then the fallback."""

    def __init__(self, rules: Sequence[Rule] = (), fallback: Channel = Channel.POPULARITY) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.fallback = Channel(fallback)

    def route(
        self,
        user_type: UserType | str,
        device: Device | str,
        action: Action | str,
    ) -> Decision:
        """Pick the channel for one request. Never raises on unknown values."""
        user = _parse(UserType, user_type)
        dev = _parse(Device, device)
        act = _parse(Action, action)
        if user is None or dev is None or act is None:
            unknown = [
                f"{field} {raw!r} (known: {_choices(enum)})"
                for field, raw, parsed, enum in (
                    ("user_type", user_type, user, UserType),
                    ("device", device, dev, Device),
                    ("action", action, act, Action),
                )
                if parsed is None
            ]
            return Decision(
                self.fallback,
                "fallback",
                f"unknown {'; '.join(unknown)}: fallback {self.fallback.value}",
                fallback=True,
            )
        for rule in self.rules:
            if rule.matches(user, dev, act):
                return Decision(
                    rule.channel,
                    rule.name,
                    f"configured rule {rule.name!r}",
                    recall=rule.recall,
                    rank=rule.rank,
                )
        decision = default_route(user, dev, act)
        if decision is not None:
            return decision
        return Decision(
            self.fallback,
            "fallback",
            f"no route for ({user.value}, {dev.value}, {act.value}): "
            f"fallback {self.fallback.value}",
            fallback=True,
        )

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "<config>") -> Router:
        """Build a router from a mapping like the YAML in the module docstring.

        `source` names the mapping's origin in error messages.
        """
        return _from_config(config, source, {})


def _field(  # noqa: UP047 (PEP 695 syntax is Python 3.12+)
    raw: Mapping[str, Any], key: str, enum: type[E], where: str
) -> E | None:
    value = raw.get(key, WILDCARD)
    if value is None or value == WILDCARD:
        return None
    parsed = _parse(enum, value)
    if parsed is None:
        raise RouteConfigError(
            f"{where}: {key} is {value!r}; expected one of {_choices(enum)} or {WILDCARD!r}. "
            f"Fix the value or remove the key to match any {key}."
        )
    return parsed


def _from_config(config: Mapping[str, Any], source: str, lines: Mapping[int, int]) -> Router:
    if not isinstance(config, Mapping):
        raise RouteConfigError(
            f"{source}: expected a mapping with 'rules' and 'fallback', found "
            f"{type(config).__name__}. Start from the example in the router module docstring."
        )
    allowed = {"rules", "fallback"}
    extra = sorted(set(config) - allowed)
    if extra:
        raise RouteConfigError(
            f"{source}: unknown key(s) {', '.join(map(repr, extra))}; expected only "
            "'rules' and 'fallback'. Check the spelling."
        )
    fallback_raw = config.get("fallback", Channel.POPULARITY.value)
    fallback = _parse(Channel, fallback_raw)
    if fallback is None:
        raise RouteConfigError(
            f"{source}: fallback is {fallback_raw!r}; expected one of {_choices(Channel)}."
        )
    raw_rules = config.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RouteConfigError(
            f"{source}: 'rules' must be a list of mappings, found {type(raw_rules).__name__}."
        )
    rules = [_rule(raw, index, source, lines) for index, raw in enumerate(raw_rules)]
    return Router(rules, fallback)


def _rule(raw: object, index: int, source: str, lines: Mapping[int, int]) -> Rule:
    where = f"{source}:{lines[index]}" if index in lines else f"{source}: rules[{index}]"
    if not isinstance(raw, Mapping):
        raise RouteConfigError(
            f"{where}: each rule must be a mapping with a 'channel', found {raw!r}."
        )
    extra = sorted(set(raw) - RULE_KEYS)
    if extra:
        raise RouteConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, extra))}; a rule has name, "
            "user_type, device, action, channel (or channels) and rank."
        )
    recall = _channels(raw, where)
    rank = raw.get("rank", False)
    if not isinstance(rank, bool):
        raise RouteConfigError(
            f"{where}: rank is {rank!r}; expected true (order the candidates with the ranker) "
            "or false (recall order)."
        )
    return Rule(
        name=str(raw.get("name") or f"rule-{index + 1}"),
        channel=recall[0],
        user_type=_field(raw, "user_type", UserType, where),
        device=_field(raw, "device", Device, where),
        action=_field(raw, "action", Action, where),
        recall=recall if len(recall) > 1 else (),
        rank=rank,
    )


def _channels(raw: Mapping[str, Any], where: str) -> tuple[Channel, ...]:
    """The rule's recall channels: `channel: x` or `channels: [x, y]` (exactly one of them)."""
    if ("channel" in raw) == ("channels" in raw):
        raise RouteConfigError(
            f"{where}: give either 'channel' (one) or 'channels' (a list); expected one of "
            f"{_choices(Channel)}."
        )
    values = [raw["channel"]] if "channel" in raw else raw["channels"]
    if not isinstance(values, list) or not values:
        raise RouteConfigError(
            f"{where}: channels is {values!r}; expected a non-empty list, e.g. [two_tower, ease]."
        )
    parsed = []
    for value in values:
        channel = _parse(Channel, value)
        if channel is None:
            what = "channel is" if "channel" in raw else "channels has"
            raise RouteConfigError(
                f"{where}: {what} {value!r}; expected one of {_choices(Channel)}."
            )
        if channel not in parsed:
            parsed.append(channel)
    return tuple(parsed)


def _rule_lines(text: str) -> dict[int, int]:
    """Map each rule's index to its 1-based line in the YAML text (for error messages)."""
    import yaml

    node = yaml.compose(text)
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        if key.value == "rules" and isinstance(value, yaml.SequenceNode):
            return {i: item.start_mark.line + 1 for i, item in enumerate(value.value)}
    return {}


def load_router(path: str | Path | None) -> Router:
    """A router from a YAML routes file, or the built-in defaults when `path` is None."""
    if path is None:
        return Router()
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouteConfigError(
            f"{file}: cannot read the routes file ({exc.strerror}). Point the setting at an "
            "existing YAML file, or unset it to use the built-in routes."
        ) from exc
    try:
        config = yaml.safe_load(text) or {}
        lines = _rule_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RouteConfigError(f"{file}{line}: not valid YAML ({exc}).") from exc
    return _from_config(config, str(file), lines)
