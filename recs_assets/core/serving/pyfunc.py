"""Registered model versions as MLflow models: a pyfunc over a serving folder.

Every family's registered version (and so ``models:/recs-champion@champion``) is an MLflow pyfunc
model whose artifact ``serving`` is a serving folder (``recs_assets.core.serving.artifacts``: the
saved model, id maps, training matrix, popularity, item titles). So::

    model = mlflow.pyfunc.load_model("models:/recs-champion@champion")
    model.predict(pd.DataFrame({"user_id": ["u_8c1f0e2d4b6a9f31"]}), params={"k": 10})

returns one row per (user, rank): ``user_id``, ``rank``, ``item_id``, ``score``, ``title``,
``source`` (``model``, or ``fallback``: popularity for a user the model never saw). Loading needs
the model's pip requirements and this project's package ``recs_assets`` (``pip install`` of the
repository; the code is not copied into every version: 169 files made each load list and fetch
them one by one through the tracking server, past its timeouts under load). The model itself is
logged as code, one short file (``pyfunc_code.py``, MLflow's models from code), not as a pickled
object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from recs_assets.core.serving.artifacts import ServingModel
from recs_assets.core.serving.batch_scoring import batch_top_k

SERVING_ARTIFACT = "serving"
MODEL_CODE = Path(__file__).with_name("pyfunc_code.py")  # what a version runs to build its model
DEFAULT_K = 10
MAX_K = 100
OUTPUT_COLUMNS = ("user_id", "rank", "item_id", "score", "title", "source")


class RecsPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Top-k recommendations from a serving folder (the pyfunc flavour of a registered version)."""

    def load_context(self, context: Any) -> None:
        self.serving = ServingModel.load(Path(context.artifacts[SERVING_ARTIFACT]), strict=True)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return recommend_frame(self.serving, model_input, params)


def recommend_frame(
    serving: ServingModel, model_input: pd.DataFrame, params: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Top ``params["k"]`` (10; 1-100) per ``user_id`` row of ``model_input``, best first;
    ``params["exclude_seen"]`` (True) leaves out training items. Raises ``ValueError`` for a
    missing ``user_id`` column or a ``k`` out of range."""
    params = dict(params or {})
    k = int(params.get("k", DEFAULT_K))
    exclude_seen = bool(params.get("exclude_seen", True))
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be between 1 and {MAX_K}, got {k}")
    if "user_id" not in model_input.columns:
        raise ValueError(f"model input needs a user_id column, got {list(model_input.columns)}")
    users = [str(u) for u in model_input["user_id"]]
    train = serving.train
    known = [i for i, u in enumerate(users) if train.has_user(u)]
    rows = np.array([train.user_index(users[i]) for i in known], dtype=np.int64)
    lists: dict[int, tuple[np.ndarray, np.ndarray, str]] = {}
    if len(rows) and serving.recommender is not None:
        exclude = train.matrix if exclude_seen else None
        idx, sc = batch_top_k(serving.recommender, rows, k, exclude=exclude)
        for j, i in enumerate(known):
            keep = idx[j] >= 0
            lists[i] = (idx[j][keep], sc[j][keep], "model")
    popular = serving.popular_order[:k]
    for i in range(len(users)):
        if i not in lists:
            lists[i] = (popular, serving.popularity[popular], "fallback")
    out = []
    for i, user in enumerate(users):
        items, scores, source = lists[i]
        for rank, (item, score) in enumerate(zip(items, scores, strict=True), start=1):
            title = str(serving.titles[item])
            out.append((user, rank, str(train.item_ids[item]), float(score), title, source))
    return pd.DataFrame(out, columns=list(OUTPUT_COLUMNS))


def _signature() -> Any:
    """Input ``user_id``; output ``OUTPUT_COLUMNS``; params ``k`` and ``exclude_seen``. Declared,
    not inferred from an example (inference warns of the integer ``rank`` on every version)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "user_id")]),
        outputs=Schema(
            [
                ColSpec("string", "user_id"),
                ColSpec("long", "rank"),
                ColSpec("string", "item_id"),
                ColSpec("double", "score"),
                ColSpec("string", "title"),
                ColSpec("string", "source"),
            ]
        ),
        params=ParamSchema(
            [ParamSpec("k", "long", DEFAULT_K), ParamSpec("exclude_seen", "boolean", True)]
        ),
    )


SIGNATURE = _signature()


def log_pyfunc_model(serving_folder: Path, example_users: list[str], name: str = "model") -> Any:
    """Log ``serving_folder`` as a pyfunc model of the active MLflow run, with a signature and
    an input example (``example_users``); returns MLflow's ``ModelInfo`` (its ``model_uri`` is
    what a version is registered from)."""
    ServingModel.load(serving_folder, strict=True)  # a folder that does not load fails here
    example = pd.DataFrame({"user_id": example_users})
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(MODEL_CODE),
        artifacts={SERVING_ARTIFACT: str(serving_folder)},
        signature=SIGNATURE,
        input_example=example,
        pip_requirements=pyfunc_requirements(),
    )


def pyfunc_requirements() -> list[str]:
    """What loading the pyfunc imports, pinned to this environment's versions (no inference:
    MLflow's requirement inference loads the model in a subprocess, seconds per version)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in (
        "mlflow",
        "numpy",
        "scipy",
        "pandas",
        "pyarrow",
        "lightfm-next",  # lightfm
        "torch",  # ncf
        "lightgbm",  # ranker
        "faiss-cpu",  # the ANN index of als over a large catalog
    ):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out
