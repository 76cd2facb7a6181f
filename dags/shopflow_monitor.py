"""Monitoring DAG: drift and live performance of every champion, after each accepted batch and daily.

Scheduled on the feature Assets the data DAG's switch of CURRENT updates (so it runs once the newest batch's
features are current) or at midnight UTC. `monitor` runs every check (`pipelines.monitoring`: data drift of the
newest batch and of the served features against the champion's training reference, prediction drift, live
performance) and records the run (history, HTML report logged to MLflow). A breach fails `alert` with a one-line
reason; with `SHOPFLOW_MONITOR__RETRAIN_ON_BREACH=true`, `retrain_<model>` updates that model's retraining Asset,
which schedules its training DAG.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from pipelines.assets import features_asset_uri, retrain_asset_uri
from pipelines.errors import user_errors_as
from pipelines.registry import load_registry

DEFAULT_ARGS = {"owner": "shopflow", "retries": 2, "retry_delay": timedelta(seconds=30)}
MODELS = sorted(load_registry())
FEATURE_ASSETS = [Asset(features_asset_uri(s)) for s in sorted({sp.feature_service for sp in load_registry().values()})]


def _any(assets: list[Asset]):
    condition = assets[0]
    for asset in assets[1:]:
        condition = condition | asset
    return condition


@dag(
    dag_id="shopflow_monitor",
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 0 * * *", timezone="UTC"),
                                 assets=_any(FEATURE_ASSETS)),
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["shopflow", "monitoring"],
    doc_md=__doc__,
)
def shopflow_monitor():
    @task
    def monitor() -> dict:
        """Every check of every champion, recorded; returns the verdict (the full result is in the report)."""
        from pipelines.monitoring.monitor import run_monitor
        from pipelines.settings import get_settings

        with user_errors_as(AirflowFailException):  # e.g. nothing published yet: retrying cannot fix it
            result = run_monitor(get_settings())
        return {k: result[k] for k in ("run_id", "breaches", "reason", "report", "mlflow_run_id")}

    @task(retries=0)
    def alert(result: dict) -> str:
        """Fails with the breach's one-line reason (the run is already recorded)."""
        if result["breaches"]:
            raise AirflowFailException(f"monitoring breach: {result['reason']}")
        return f"no breach (report {result['report']})"

    def retrain(model: str):
        @task(task_id=f"retrain_{model}", retries=0, outlets=[Asset(retrain_asset_uri(model))])
        def request(result: dict) -> str:
            """Updates the model's retraining Asset when it breached and retraining on breach is on."""
            from pipelines.settings import get_settings

            if model not in result["breaches"]:
                raise AirflowSkipException(f"{model}: no breach")
            if not get_settings().monitor.retrain_on_breach:
                raise AirflowSkipException(f"{model} breached; SHOPFLOW_MONITOR__RETRAIN_ON_BREACH is off")
            return f"{model}: retraining requested ({result['reason']})"

        return request

    result = monitor()
    alert(result)
    for model in MODELS:
        retrain(model)(result)


shopflow_monitor()
