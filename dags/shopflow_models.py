"""One training DAG per model family, generated from the model-spec registry.

Each DAG is scheduled on the Asset of its FeatureService, so it follows fresh features: train on the Feast
training set and register the version as ``challenger`` in MLflow, then run the champion/challenger gate.
A new family is a new module in ``pipelines/models/``: its DAG appears here without editing this file.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from pipelines.assets import features_asset_uri
from pipelines.registry import load_registry

DEFAULT_ARGS = {"owner": "shopflow", "retries": 2, "retry_delay": timedelta(seconds=30)}


def build_model_dag(spec):
    """The ``shopflow_train_<model>`` DAG of one family."""

    @dag(
        dag_id=f"shopflow_train_{spec.name}",
        schedule=[Asset(features_asset_uri(spec.feature_service))],
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["shopflow", "training", spec.name],
        params={
            "overrides": Param({}, type="object", description="Hyper-parameter overrides, e.g. {\"max_depth\": 6}."),
            "force": Param(False, type="boolean", description="Retrain even if this data+params+code was trained."),
        },
        doc_md=f"### Train `{spec.name}`\n\n{spec.description}\n\n"
               f"Feature service `{spec.feature_service}`; gate metric `{spec.primary_metric}` "
               f"({'higher' if spec.higher_is_better else 'lower'} is better).\n\n{__doc__}",
    )
    def model_dag():
        @task
        def train(params=None) -> dict:
            """Train on the Feast training set, log to MLflow, register as challenger."""
            from pipelines.settings import get_settings
            from pipelines.training import train_model

            params = params or {}
            return train_model(spec.name, get_settings(), params.get("overrides") or {}, bool(params.get("force")))

        @task
        def evaluate_and_promote(trained: dict, params=None) -> dict:
            """Score challenger and champion on the same holdout; promote only a real improvement."""
            from pipelines.settings import get_settings
            from pipelines.training import evaluate_and_promote as gate

            overrides = (params or {}).get("overrides") or {}
            return trained | gate(spec.name, get_settings(), trained["version"], overrides)

        evaluate_and_promote(train())

    return model_dag()


for _spec in load_registry().values():
    globals()[f"shopflow_train_{_spec.name}"] = build_model_dag(_spec)
