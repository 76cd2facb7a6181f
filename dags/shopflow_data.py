"""Data DAG: validate the newest raw batch with Great Expectations, build its feature snapshot aside, materialize it,
then switch it in: CURRENT names the batch and its snapshot together.

A failing batch stops at `validate`: it is quarantined with a readable report and nothing is built from it. An
accepted batch becomes CURRENT only in the last task, `publish`, in one step, so a run killed anywhere leaves the
previous batch and its features current, and rerunning the DAG finishes the job (pipelines/publish.py). When the
switch is done, the DAG updates one Asset per FeatureService, which schedules each model's DAG.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from pipelines.assets import VALIDATED_BATCH_URI, features_asset_uri
from pipelines.errors import user_errors_as
from pipelines.paths import BATCH_ID_PATTERN
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
    params={"batch_id": Param(None, type=["null", "string"], pattern=BATCH_ID_PATTERN,
                              description="Landing batch to ingest; newest if empty.")},
    doc_md=__doc__,
)
def shopflow_data():
    @task(retries=0, outlets=[Asset(VALIDATED_BATCH_URI)])
    def validate(params=None) -> dict:
        """Run the GX checkpoint; a failed batch is quarantined and the run fails without retry."""
        from pipelines import steps

        with user_errors_as(AirflowFailException):  # retrying cannot fix the input
            return steps.validate((params or {}).get("batch_id"))

    @task
    def build_features(report: dict) -> dict:
        """The batch's point-in-time feature snapshot, built aside (reused if complete): nothing readers use changes."""
        from pipelines import steps

        with user_errors_as(AirflowFailException):  # retrying cannot fix the input
            return {"batch_id": report["batch_id"], "snapshot_id": steps.build_features(report["batch_id"])}

    @task
    def apply_feature_repo(built: dict) -> dict:
        """`feast apply`: register entities, sources, views and feature services."""
        from pipelines import steps

        steps.apply_features()
        return built

    @task
    def materialize(built: dict) -> dict:
        """Load the snapshot's newest feature values into the online store for serving."""
        from pipelines import steps

        with user_errors_as(AirflowFailException):  # retrying cannot fix the input
            steps.materialize(built["batch_id"], built["snapshot_id"])
        return built

    @task(outlets=FEATURE_ASSETS)
    def publish(built: dict) -> dict:
        """The switch: CURRENT := (batch, snapshot) in one write; models train on it from here on."""
        from pipelines import steps

        with user_errors_as(AirflowFailException):  # retrying cannot fix the input
            return steps.publish(built["batch_id"], built["snapshot_id"])

    publish(materialize(apply_feature_repo(build_features(validate()))))


shopflow_data()
