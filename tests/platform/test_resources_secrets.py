"""Secrets given through the environment never reach the Dagster UI: resources get them as
``EnvVar``s, so the real webserver's GraphQL answers name the variable, never its value."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from dagster import EnvVar
from ui_helpers import dagster_webserver

from recs_assets.cli.dagster_home import prepare_dagster_home
from recs_assets.resources import SECRET_ENVS, build_resources

RESOURCES_QUERY = """
query($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList {
      results { name configuredValues { key value type } configFields { name defaultValueAsJson } }
    }
    ... on PythonError { message }
  }
  utilizedEnvVarsOrError(repositorySelector: $selector) {
    __typename
    ... on EnvVarWithConsumersList { results { envVarName } }
  }
}
"""


def test_secret_values_become_env_vars_and_others_stay_plain() -> None:
    env = {name: f"value-of-{name}" for name in SECRET_ENVS} | {"RECS_SPARK_MASTER": "local[1]"}
    resources = build_resources(env)
    assert resources["feast"].redis_url == EnvVar("RECS_REDIS_URL")
    assert resources["mlflow_tracker"].tracking_uri == EnvVar("MLFLOW_TRACKING_URI")
    assert resources["alert_webhook"].url == EnvVar("RECS_ALERT_WEBHOOK")
    assert resources["spark"].master == "local[1]"  # not a secret: shown as is
    assert build_resources({})["feast"].redis_url == ""  # unset: the embedded default


def graphql(url: str, query: str, variables: dict[str, object]) -> str:
    body = json.dumps({"query": query, "variables": variables}).encode()
    req = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read().decode()


@pytest.mark.slow
def test_the_webserver_never_shows_a_secret(tmp_path: Path) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    env = {
        "RECS_REDIS_URL": f"redis://:{token}@127.0.0.1:6379/15",
        "MLFLOW_TRACKING_URI": f"http://user:{token}@127.0.0.1:9/",
        "RECS_ALERT_WEBHOOK": f"http://127.0.0.1:9/hook?token={token}",
        "RECS_DATA_DIR": str(tmp_path / "data"),
    }
    home = prepare_dagster_home(tmp_path / "home", env={})
    with dagster_webserver(home, env) as url:
        selector = {"repositoryLocationName": "recs", "repositoryName": "__repository__"}
        answer = graphql(url, RESOURCES_QUERY, {"selector": selector})
    doc = json.loads(answer)["data"]
    resources = doc["allTopLevelResourceDetailsOrError"]
    assert resources["__typename"] == "ResourceDetailsList", resources
    assert token not in answer
    values = {
        (r["name"], v["key"]): (v["type"], v["value"])
        for r in resources["results"]
        for v in r["configuredValues"]
    }
    assert values[("feast", "redis_url")] == ("ENV_VAR", "RECS_REDIS_URL")
    assert values[("mlflow_tracker", "tracking_uri")] == ("ENV_VAR", "MLFLOW_TRACKING_URI")
    assert values[("alert_webhook", "url")] == ("ENV_VAR", "RECS_ALERT_WEBHOOK")
    used = {e["envVarName"] for e in doc["utilizedEnvVarsOrError"]["results"]}
    assert set(SECRET_ENVS) <= used
