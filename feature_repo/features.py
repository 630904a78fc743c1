"""The recs feature definitions for the Feast CLI (`feast plan`, `feast apply`, `feast ui`).

The same objects the ``online_feature_store`` asset applies (``feature_views.feature_objects``),
over the feature tables of ``$RECS_DATA_DIR`` (``<data dir>/features/user_features`` and
``item_features``, written by the feature assets; their schema is read from that Parquet).
"""

import os
from pathlib import Path

from recs_assets.core.features.feast_repo.feature_views import feature_objects

if not os.environ.get("RECS_DATA_DIR"):
    raise RuntimeError("set RECS_DATA_DIR to the pipeline's data dir (e.g. $PWD/.data)")
_FEATURES = Path(os.environ["RECS_DATA_DIR"]) / "features"

user, item, user_features, item_features, recs_features = feature_objects(
    _FEATURES / "user_features", _FEATURES / "item_features"
)
