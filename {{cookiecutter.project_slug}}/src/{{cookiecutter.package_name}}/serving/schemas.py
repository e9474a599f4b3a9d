"""Request and response bodies of the service (pydantic v2): the OpenAPI schema is built from these.

`user_type`, `device` and `action` are strings, not enums, on purpose: an app release that
starts sending a new device type must keep getting recommendations (the router's fallback,
with the reason saying which value it did not know), not a wall of 422s. The known values are
listed in the schema so clients and fuzzers see them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..router import Action, Channel, Device, UserType

MAX_K = 100
"""Upper bound on `k`: bigger lists belong to a batch job, not a request path."""

MAX_RECENT_ITEMS = 200
"""Upper bound on `recent_items`: far past any sequence length a model reads (the sasrec
channel reads the last `max_len` of them, 50 by default)."""

_NAME = r"^[A-Za-z0-9_\-]{1,32}$"


def _whole_number(value: object) -> object:
    """JSON Schema counts 20.0 as an integer, so accept it as 20; 20.5 and "20" stay errors."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _known(enum: type) -> str:
    return (
        "Known values: "
        + ", ".join(member.value for member in enum)
        + ". Others take the fallback route."
    )


class RecommendRequest(BaseModel):
    """What to recommend for whom, in which context."""

    # strict: `"k": "10"` or `"exclude_seen": 0` are client bugs to report, not to guess at.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u42",
                    "user_type": "returning",
                    "device": "mobile",
                    "action": "purchase",
                    "k": 20,
                    "exclude_seen": True,
                }
            ]
        },
    )

    user_id: str = Field(
        min_length=1, max_length=128, description="Raw user id; unknown ids get cold start."
    )
    user_type: str = Field(
        pattern=_NAME, examples=[u.value for u in UserType], description=_known(UserType)
    )
    device: str = Field(
        pattern=_NAME, examples=[d.value for d in Device], description=_known(Device)
    )
    action: str = Field(
        pattern=_NAME, examples=[a.value for a in Action], description=_known(Action)
    )
    k: WholeNumber = Field(default=10, ge=1, le=MAX_K, description=f"How many items, 1..{MAX_K}.")
    exclude_seen: bool = Field(
        default=True, description="Leave out items the user already interacted with."
    )
    item_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The item in view (seeds item-graph recall); optional.",
    )
    recent_items: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None,
        max_length=MAX_RECENT_ITEMS,
        description="The user's recent item ids, oldest first (this session's views, say), "
        "read by the sasrec channel in place of the stored history (and left out of its "
        "answer when exclude_seen is true); other channels ignore them. Ids the catalog does "
        "not hold are left out, and the reason names them. "
        f"Optional, at most {MAX_RECENT_ITEMS}; empty means none.",
        examples=[["i00017", "i00342", "i00018"]],
    )


class ScoredItem(BaseModel):
    item_id: str
    score: float | None = Field(
        description="The last stage's score: the ranker's logit on a ranked route, else the "
        "channel's (similarity, co-occurrence weight, EASE score or popularity count); null "
        "for an item filled from popularity after a ranked route ran out of candidates."
    )
    stages: dict[str, float] = Field(
        default_factory=dict,
        description="The item's score at each stage: per recall channel that retrieved it (on "
        "a ranked route, the channel's score standardised over its top-N for this user) and "
        "'rank', the ranker's logit.",
        examples=[{"two_tower": 1.82, "ease": 2.4, "rank": 3.1}],
    )


class RecommendResponse(BaseModel):
    """The items, and which channel produced them and why."""

    user_id: str
    items: list[ScoredItem]
    channel: Channel = Field(description="The (main) recall channel that produced the items.")
    stages: list[str] = Field(
        default_factory=list,
        description="The stages that ran, in order: recall (channels, candidates), then rank "
        "where the ranker ordered them.",
    )
    rule: str = Field(description="The routing rule that matched ('fallback' when none did).")
    reason: str = Field(description="Why this channel: the route, then any downgrade on the way.")
    fallback: bool = Field(description="True when the routed channel could not answer as routed.")
    known_user: bool = Field(description="Whether the user id is in the trained model.")


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    status: str = Field(examples=["ready"])
    artifacts: str = Field(description="Folder the artifacts were loaded from.")
    n_users: int
    n_items: int
    dim: int
    channels: list[str] = Field(
        description="The recall channels loaded from the artifacts.",
        examples=[["popularity", "item_graph", "two_tower", "ease"]],
    )
    ranker: str = Field(
        default="", description="The ranker file in use, or why ranked routes are not ranked."
    )
    package_version: str


class FieldError(BaseModel):
    field: str = Field(description="Where the problem is, e.g. 'body.k'.", examples=["body.k"])
    message: str = Field(examples=["Input should be less than or equal to 100"])
    input: object | None = Field(
        default=None,
        description="The value that was sent, if any: as sent when short, else a short excerpt.",
    )


class ErrorDetail(BaseModel):
    """400 (not UTF-8 text), 413 (over the size limit) or 415 (not JSON): one readable line."""

    detail: str = Field(examples=["There was an error parsing the body"])


class ValidationErrorBody(BaseModel):
    """422: the request was understood as JSON (or not) but does not fit the schema."""

    detail: str = Field(examples=["1 invalid field in the request; see 'errors'."])
    errors: list[FieldError]
