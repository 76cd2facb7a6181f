"""Data DAG: validate the newest raw batch with Great Expectations, then rebuild and materialize Feast features.

A failing batch stops here: it is quarantined with a readable report and no feature or model is built from it.
When features are fresh, the DAG updates one Asset per FeatureService, which schedules each model's DAG.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task

from pipelines.assets import VALIDATED_BATCH_URI, features_asset_uri
from pipelines.registry import load_registry

FEATURE_ASSETS = [Asset(features_asset_uri(s)) for s in sorted({sp.feature_service for sp in load_registry().values()})]

DEFAULT_ARGS = {"owner": "shopflow", "retries": 2, "retry_delay": timedelta(seconds=30)}


@dag(
    dag_id="shopflow_data",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["shopflow", "data", "great-expectations", "feast"],
    params={"batch_id": Param(None, type=["null", "string"], description="Landing batch to ingest; newest if empty.")},
    doc_md=__doc__,
)
def shopflow_data():
    @task(retries=0, outlets=[Asset(VALIDATED_BATCH_URI)])
    def validate(params=None) -> dict:
        """Run the GX checkpoint; a failed batch is quarantined and the run fails without retry."""
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.settings import get_settings
        from pipelines.validation.gate import DataValidationError, current_or_latest_batch, gate

        settings = get_settings()
        batch_id = (params or {}).get("batch_id") or current_or_latest_batch(settings)
        if batch_id is None:
            raise AirflowFailException("no batch to validate: run `shopflow data generate` or `shopflow data import DIR`")
        try:
            return gate(batch_id, settings).to_dict()
        except DataValidationError as exc:
            # Retrying cannot fix bad data: fail fast, the report says what to fix.
            raise AirflowFailException(str(exc)) from exc

    @task
    def build_features(report: dict) -> dict:
        """Point-in-time feature snapshots of the validated batch, written atomically for Feast's offline store."""
        from pipelines.features.build import build_feature_tables
        from pipelines.settings import get_settings

        settings = get_settings()
        paths = build_feature_tables(settings.batches_dir / report["batch_id"], settings)
        return {"batch_id": report["batch_id"], "tables": {k: str(v) for k, v in paths.items()}}

    @task
    def apply_feature_repo(built: dict) -> dict:
        """`feast apply`: register entities, sources, views and feature services."""
        from pipelines.features.store import apply
        from pipelines.settings import get_settings

        apply(get_settings())
        return built

    @task(outlets=FEATURE_ASSETS)
    def materialize(built: dict) -> dict:
        """Load the newest feature values into the online store for serving."""
        from pipelines.features.store import materialize as feast_materialize
        from pipelines.settings import get_settings

        # Default end = the newest snapshot in the feature files, so a batch imported long after its last day serves.
        feast_materialize(get_settings())
        return built

    materialize(apply_feature_repo(build_features(validate())))


shopflow_data()
