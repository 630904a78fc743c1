"""Asset ``bento_model``: the champion model exported to the BentoML model store for serving."""

import pandas as pd
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from recs_assets.core.serving.champion import ChampionModel, data_version, item_popularity
from recs_assets.core.serving.export import DEFAULT_MODEL_NAME, export_model


class BentoModelConfig(Config):
    """Where the champion is exported."""

    model_name: str = Field(
        DEFAULT_MODEL_NAME, description="BentoML model name (RECS_BENTO_MODEL)."
    )


@asset
def bento_model(
    context: AssetExecutionContext,
    config: BentoModelConfig,
    champion_model: ChampionModel,
    raw_items: pd.DataFrame,
) -> Output[str]:
    """Tag (name:version) of the champion model in the BentoML model store, ready to serve."""
    train = champion_model.train
    popularity = item_popularity(train)
    labels = {
        "model_version": champion_model.version,
        "dagster_run_id": context.run.run_id,
        "data_version": data_version(train),
        "model_family": champion_model.model.name,
    }
    tag = export_model(
        champion_model.model,
        train,
        raw_items,
        popularity,
        labels,
        name=config.model_name,
        user_encoder=champion_model.user_encoder,
    )
    top = popularity.argsort(kind="stable")[::-1][:10]
    titles = raw_items.assign(item_id=raw_items["item_id"].astype(str)).set_index("item_id")[
        "title"
    ]
    preview = pd.DataFrame(
        {
            "item_id": train.item_ids[top],
            "title": [titles.get(str(i), str(i)) for i in train.item_ids[top]],
            "users": popularity[top].astype(int),
        }
    )
    context.log.info(f"exported {champion_model.model.name} as {tag}")
    return Output(
        str(tag),
        metadata={
            "tag": str(tag),
            "labels": MetadataValue.json(labels),
            "n_users": train.n_users,
            "n_items": train.n_items,
            "n_interactions": train.nnz,
            "fallback_top10": MetadataValue.md(preview.to_markdown(index=False)),
            "serve": MetadataValue.md(
                f"`RECS_BENTO_MODEL={tag} bentoml serve bento.service:RecsService`"
            ),
        },
    )
