"""Request and response shapes of the recommendation API (pydantic; shown on the OpenAPI page)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Source = Literal["model", "cache", "fallback", "features"]
Reason = Literal["model", "trending", "exploration", "popularity"]


def _whole_number(value: object) -> object:
    """``7.0`` as ``7``: JSON Schema's ``integer`` includes numbers written with a zero fraction.
    Everything else goes on to a strict ``int`` check (``true``, ``"7"``, ``7.5`` stay a 400)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# after the Field(strict=True) of an int (placed before it, pydantic writes `ge` into the schema)
WholeNumber = BeforeValidator(_whole_number)


class RequestContext(BaseModel):
    """Optional request context; accepted for context-aware rerankers, part of the cache key."""

    model_config = ConfigDict(extra="allow")

    device: str | None = Field(None, description="Client device, e.g. 'mobile', 'desktop', 'tv'.")
    hour: Annotated[int | None, WholeNumber] = Field(
        None, ge=0, le=23, strict=True, description="Local hour of the request, 0-23."
    )  # strict: true or "7" is a 400, as the schema says, not hour 1 or 7
    platform: str | None = Field(None, description="Client platform, e.g. 'ios', 'web'.")


class RecommendedItem(BaseModel):
    """One recommended item."""

    item_id: str = Field(description="External item id.")
    score: float = Field(
        description="Score of the item's origin (higher is better): the model's score, the "
        "trending score, or the training popularity; comparable between items of the same reason."
    )
    title: str = Field(description="Item title from the catalog at export time.")
    reason: Reason = Field(
        "model",
        description="Why the item is in the list: 'model' (ranked by the model); 'trending' (a "
        "trending slot, RECS_TRENDING_SLOTS, or the trending list of a user the model never "
        "saw); 'exploration' (an exploration slot, RECS_EXPLORATION_SLOTS: an item with little "
        "feedback yet); 'popularity' (the popularity fallback).",
    )


class Recommendations(BaseModel):
    """A ranked list for one user."""

    user_id: str = Field(description="The user the list is for.")
    items: list[RecommendedItem] = Field(description="Recommended items, best first.")
    model_version: str = Field(description="Version of the model that produced the list.")
    variant: str = Field(description="Experiment variant of this deployment.")
    source: Source = Field(
        description="'model': computed now; 'cache': served from the cache; 'features': a user "
        "the model never saw, scored by a feature-based model from the user's online features; "
        "'fallback': an unknown user without features (the trending list when one is "
        "published, else popularity; see each item's reason), or the model failed (popularity)."
    )


class BatchRecommendations(BaseModel):
    """Lists for several users, in request order."""

    results: list[Recommendations] = Field(description="One entry per requested user id.")
    model_version: str = Field(description="Version of the model that produced the lists.")


class ScoredItem(BaseModel):
    """A model score for one (user, item) pair."""

    item_id: str = Field(description="External item id.")
    score: float = Field(description="Model score (higher is better).")


class Scores(BaseModel):
    """Scores of requested items for one user, in request order."""

    user_id: str = Field(description="The user scored.")
    scores: list[ScoredItem] = Field(description="One score per requested item id.")
    model_version: str = Field(description="Version of the model that produced the scores.")
    variant: str = Field(description="Experiment variant of this deployment.")
    source: Source = Field(
        description="'model'; 'features' for a user the model never saw, scored from the user's "
        "online features (feature-based models); 'fallback' (popularity) for other unknown users."
    )


class SimilarItems(BaseModel):
    """Items most similar to one item."""

    item_id: str = Field(description="The query item.")
    items: list[RecommendedItem] = Field(description="Similar items, most similar first.")
    model_version: str = Field(description="Version of the model that produced the list.")
    source: Source = Field(
        description="'model': the model's item vectors; 'cache'; 'fallback': co-occurrence "
        "cosine on the training interactions (the model has no item vectors)."
    )


class ModelInfo(BaseModel):
    """What this worker serves."""

    model_version: str = Field(description="Reported model version.")
    model_name: str = Field(description="Model family (popularity, ease, ...).")
    model_loaded: bool = Field(description="False when the model failed to load (fallback only).")
    load_error: str | None = Field(description="Why the model failed to load, if it did.")
    labels: dict[str, str] = Field(
        description="Labels of the BentoML model (run id, data version)."
    )
    variant: str = Field(description="Experiment variant of this deployment.")
    n_users: int = Field(description="Users known to the model.")
    n_items: int = Field(description="Items in the catalog of the model.")
    cache: str = Field(description="Cache backend: 'redis' or 'lru'.")
    cache_hits: int = Field(description="Cache hits in this worker since start.")
    cache_misses: int = Field(description="Cache misses in this worker since start.")
    cache_errors: int = Field(description="Cache backend errors in this worker since start.")
    champion_alias: str | None = Field(
        None,
        description="Version the MLflow champion alias named at the last poll (None: not "
        "followed or no alias); differs from model_version while that version is not in the store.",
    )


class FeedbackAck(BaseModel):
    """A recorded feedback event (``POST /feedback``)."""

    user_id: str = Field(description="The user who acted.")
    item_id: str = Field(description="The item clicked or converted.")
    event: Literal["click", "conversion"] = Field(description="What the user did.")
    variant: str = Field(description="Experiment variant credited (given, or the user's).")
    model_version: str = Field(description="Model version credited (given, or the variant's).")
    recorded: bool = Field(description="False when the exposure log is off (RECS_EXPOSURE_LOG).")


class ForgetAck(BaseModel):
    """A forget request carried out (``POST /forget_user``, admin scope)."""

    user_id: str = Field(description="The user forgotten (the id the tables hold).")
    request_id: str = Field(description="Id of the request in the forget log (audit).")
    parquet_rows: dict[str, int] = Field(
        description="Rows removed per Parquet file of the data dir (tables, logs)."
    )
    online_store_rows: int = Field(description="Rows removed from the Feast online store.")
    redis_keys: int = Field(description="Redis keys removed (cached lists, impressions).")
    cached_lists: int = Field(description="Cached lists removed from this worker's memory.")
