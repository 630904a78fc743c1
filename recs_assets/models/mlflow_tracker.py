"""MLflow tracking and registry as a Dagster resource: one MLflow run per asset materialization.

dagster-mlflow 0.29 offers only the legacy ``mlflow_tracking`` resource, which opens one MLflow run
per Dagster *run* and closes it in an atexit hook (dagster-io/dagster issues 15053 and 21872). We
keep its parameter chunking (``MlFlow.log_params``) and wrap the rest in ``MlflowTracker``.

Embedded default: an SQLite tracking + registry store and an artifact folder under ``.mlflow/`` in
the repository (git-ignored). ``MLFLOW_TRACKING_URI`` (or the ``tracking_uri`` field) points it at a
real server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from dagster import ConfigurableResource
from dagster_mlflow.resources import MlFlow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from recs_assets.core.contracts import CHALLENGER_ALIAS, CHAMPION_ALIAS, CHAMPION_MODEL
from recs_assets.core.paths import LOCAL_MLFLOW_DIR, local_mlflow_uri
from recs_assets.core.serving.pyfunc import log_pyfunc_model

CHAMPION = CHAMPION_ALIAS
CHALLENGER = CHALLENGER_ALIAS


def local_store(root: Path = LOCAL_MLFLOW_DIR) -> tuple[str, str]:
    """(tracking URI, artifact root) of the embedded store under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    return local_mlflow_uri(root), (root / "artifacts").as_uri()


SQLITE_PREFIX = "sqlite:///"


class MlflowTracker(ConfigurableResource):
    """MLflow runs, metrics, artifacts and the model registry (versions and aliases).

    Attributes:
        tracking_uri: MLflow tracking URI; empty means ``$MLFLOW_TRACKING_URI`` or the local store.
        experiment_name: experiment every run goes to.
        local_root: folder of the embedded store (used only when no URI is configured).
        dagster_url: base URL of the Dagster UI, for the link back from MLflow to the Dagster run.
    """

    tracking_uri: str = ""
    experiment_name: str = "recs"
    local_root: str = ""
    dagster_url: str = "http://127.0.0.1:3000"

    # ---- setup -------------------------------------------------------------------------------
    def _local_root(self) -> Path | None:
        """The embedded store's folder, or None when a tracking URI is configured.

        Precedence: ``tracking_uri`` field, ``local_root`` field, ``$MLFLOW_TRACKING_URI``, the
        repo's ``.mlflow/``. (``mlflow.set_tracking_uri`` writes the environment variable, so an
        explicit ``local_root`` must win over it.)
        """
        if self.tracking_uri:
            return None
        if self.local_root:
            return Path(self.local_root)
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return None
        return LOCAL_MLFLOW_DIR

    def resolved_uri(self) -> str:
        root = self._local_root()
        if root is None:
            return self.tracking_uri or os.environ["MLFLOW_TRACKING_URI"]
        return local_store(root)[0]

    def _artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: ``artifacts/`` beside an SQLite store's
        file, whichever way its URI was given (field, environment, the embedded default; MLflow
        would take ``./mlruns`` under the working directory); None for a server, which decides."""
        root = self._local_root()
        if root is not None:
            return local_store(root)[1]
        uri = self.resolved_uri()
        if uri.startswith(SQLITE_PREFIX):
            return (Path(uri[len(SQLITE_PREFIX) :]).resolve().parent / "artifacts").as_uri()
        return None

    def client(self) -> MlflowClient:
        uri = self.resolved_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiment_id(self) -> str:
        client = self.client()
        exp = client.get_experiment_by_name(self.experiment_name)
        if exp is not None:
            return exp.experiment_id
        return client.create_experiment(
            self.experiment_name, artifact_location=self._artifact_location()
        )

    # ---- runs --------------------------------------------------------------------------------
    @contextmanager
    def start_run(
        self,
        run_name: str,
        dagster_run_id: str | None = None,
        asset_key: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[mlflow.ActiveRun]:
        """Open one MLflow run (tagged with the Dagster run and asset) and make it active.

        A failure inside the block marks the run FAILED and re-raises.
        """
        uri = self.resolved_uri()
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        all_tags = dict(tags or {})
        if dagster_run_id:
            all_tags["dagster.run_id"] = dagster_run_id
            all_tags["dagster.run_url"] = f"{self.dagster_url}/runs/{dagster_run_id}"
        if asset_key:
            all_tags["dagster.asset_key"] = asset_key
        with mlflow.start_run(
            experiment_id=self.experiment_id(), run_name=run_name, tags=all_tags
        ) as run:
            yield run

    @staticmethod
    def log_params(params: Mapping[str, Any]) -> None:
        """Log params in chunks of 100 (MLflow's limit), as dagster-mlflow does."""
        MlFlow.log_params(dict(params))

    def run_url(self, run_id: str) -> str:
        uri = self.resolved_uri()
        if uri.startswith("http"):
            return f"{uri.rstrip('/')}/#/experiments/{self.experiment_id()}/runs/{run_id}"
        return f"{uri} (experiment {self.experiment_name}, run {run_id})"

    # ---- registry ----------------------------------------------------------------------------
    def register_folder(
        self,
        run_id: str,
        folder: Path,
        model_name: str,
        artifact_path: str = "model",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Log ``folder`` as the run's ``artifact_path`` and register it as a new model version."""
        client = self.client()
        client.log_artifacts(run_id, str(folder), artifact_path)
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name)
        source = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{artifact_path}"
        return client.create_model_version(
            model_name, source=source, run_id=run_id, tags=dict(tags or {})
        )

    def register_pyfunc(
        self,
        serving_folder: Path,
        model_name: str,
        example_users: list[str],
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Log ``serving_folder`` as an MLflow pyfunc model of the active run (signature, input
        example, the ``recs_assets`` package) and register it as a new version of ``model_name``:
        ``mlflow.pyfunc.load_model("models:/<name>/<version>")`` then recommends."""
        info = log_pyfunc_model(serving_folder, example_users)
        return mlflow.register_model(info.model_uri, model_name, tags=dict(tags or {}))

    def promote(
        self, source: ModelVersion, model_name: str = CHAMPION_MODEL, alias: str = CHAMPION
    ) -> ModelVersion:
        """Register ``source`` (a family's model version) as a new version of ``model_name`` and
        point ``alias`` at it. The family and its own version are kept as tags."""
        client = self.client()
        try:
            client.get_registered_model(model_name)
        except MlflowException:
            client.create_registered_model(model_name)
        promoted = client.create_model_version(
            model_name,
            source=source.source,
            run_id=source.run_id,
            tags={**dict(source.tags or {}), "promoted_from": f"{source.name}/{source.version}"},
            # a logged MLflow model (models:/m-...) is registered with its id (a server checks)
            model_id=getattr(source, "model_id", None) or _logged_model_id(source.source),
        )
        client.set_registered_model_alias(model_name, alias, str(promoted.version))
        return promoted

    def set_alias(self, model_name: str, alias: str, version: str | int) -> None:
        self.client().set_registered_model_alias(model_name, alias, str(version))

    def version_by_alias(self, model_name: str, alias: str) -> ModelVersion | None:
        try:
            return self.client().get_model_version_by_alias(model_name, alias)
        except MlflowException:
            return None


def _logged_model_id(source: str | None) -> str | None:
    """``m-...`` of a ``models:/m-...`` source (a logged MLflow model), else None."""
    if source and source.startswith("models:/") and "/" not in source[len("models:/") :]:
        return source[len("models:/") :]
    return None
