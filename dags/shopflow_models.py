"""One training DAG per model family, generated from the model-spec registry.

Each DAG is scheduled on the Asset of its FeatureService, so it follows fresh features: train on the Feast
training set and register the version as ``challenger`` in MLflow, then run the champion/challenger gate.
A new family is a new package in ``pipelines/models/``: its DAG appears here without editing this file.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from pipelines.assets import features_asset_uri, retrain_asset_uri
from pipelines.errors import user_errors_as
from pipelines.registry import load_registry
from pipelines.settings import get_settings

DEFAULT_ARGS = {"owner": "shopflow", "retries": 2, "retry_delay": timedelta(seconds=30)}


def _kfp_tasks(spec) -> None:
    """``SHOPFLOW_KFP__BACKEND=kfp``: submit the family's compiled training pipeline (train -> gate) to Kubeflow
    Pipelines, then wait for it in a sensor that gives its worker slot back between checks (reschedule mode)."""
    kfp = get_settings().kfp

    @task
    def submit_to_kfp(params=None) -> dict:
        """Start the KFP run; its URL is in the task log."""
        import logging

        from pipelines.kubeflow.submit import submit_training
        from pipelines.settings import get_settings as settings

        params = params or {}
        with user_errors_as(AirflowFailException):  # retrying cannot fix the input
            run = submit_training(settings(), spec.name, "", params.get("overrides") or {}, bool(params.get("force")))
        logging.getLogger(__name__).info("KFP run %s: %s", run["run_id"], run["url"])
        return run

    @task.sensor(mode="reschedule", poke_interval=kfp.poll_seconds, timeout=kfp.timeout_hours * 3600)
    def wait_for_kfp(run: dict):
        """Done when the run succeeded; a failed run fails the task (no retry can fix it)."""
        from pipelines.kubeflow.submit import DONE, FAILED, run_state
        from pipelines.settings import get_settings as settings

        state = run_state(settings(), run["run_id"])
        if state in FAILED:
            raise AirflowFailException(f"KFP run {run['run_id']} ended {state}: {run['url']}")
        return state in DONE

    wait_for_kfp(submit_to_kfp())


def build_model_dag(spec):
    """The ``shopflow_train_<model>`` DAG of one family."""

    @dag(
        dag_id=f"shopflow_train_{spec.name}",
        # Fresh features, or the monitor asking for a retraining (a breach with monitor.retrain_on_breach).
        schedule=Asset(features_asset_uri(spec.feature_service)) | Asset(retrain_asset_uri(spec.name)),
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["shopflow", "training", spec.name],
        params={
            "overrides": Param({}, type="object", description="Hyper-parameter overrides, e.g. {\"max_depth\": 6}."),
            "force": Param(False, type="boolean", description="Retrain even if this data+params+code was trained."),
            "tune_trials": Param(0, type="integer", minimum=0, maximum=500,
                                 description="Tune on the validation split first (Optuna trials; 0: no tuning)."),
        },
        doc_md=f"### Train `{spec.name}`\n\n{spec.description}\n\n"
               f"Feature service `{spec.feature_service}`; gate metric `{spec.primary_metric}` "
               f"({'higher' if spec.higher_is_better else 'lower'} is better).\n\n{__doc__}",
    )
    def model_dag():
        if get_settings().kfp.backend == "kfp":
            _kfp_tasks(spec)
            return

        @task
        def tune(params=None) -> dict:
            """Optionally tune first (``tune_trials`` > 0): the best parameters become the family's."""
            from pipelines import steps

            params = params or {}
            with user_errors_as(AirflowFailException):  # retrying cannot fix the input
                return steps.tune(spec.name, int(params.get("tune_trials") or 0), params.get("overrides") or {})

        @task
        def train(tuned: dict, params=None) -> dict:
            """Train on the Feast training set, log to MLflow, register as challenger."""
            from pipelines import steps

            params = params or {}
            with user_errors_as(AirflowFailException):  # retrying cannot fix the input
                return steps.train(spec.name, params.get("overrides") or {}, bool(params.get("force")))

        @task
        def evaluate_and_promote(trained: dict, params=None) -> dict:
            """The champion gate: promote only an improvement over the best baseline and the champion that holds up
            statistically on the same holdout."""
            from pipelines import steps

            overrides = (params or {}).get("overrides") or {}
            with user_errors_as(AirflowFailException):  # retrying cannot fix the input
                return trained | steps.gate(spec.name, trained["version"], overrides)

        gated = evaluate_and_promote(train(tune()))
        if get_settings().promotion == "approve":
            _approval_tasks(spec, gated)

    return model_dag()


def _approval_tasks(spec, gated) -> None:
    """``SHOPFLOW_PROMOTION=approve``: a version the gate would promote waits at a human-in-the-loop task showing
    the gate's evidence; the answer (Airflow UI, REST API, or ``shopflow approve|reject``) moves or keeps
    ``champion`` and lands in the alias history."""
    from airflow.providers.standard.operators.hitl import HITLOperator

    @task.short_circuit
    def awaits_approval(gated: dict) -> bool:
        """Only a version the gate would promote needs a person; anything else ends the run here."""
        return gated["gate"].get("verdict") == "awaiting approval"

    ask = HITLOperator(
        task_id="approve_promotion",
        subject=f"Make {spec.name} v{{{{ ti.xcom_pull(task_ids='evaluate_and_promote')['version'] }}}} champion?",
        body="The champion gate's evidence ({{ ti.xcom_pull(task_ids='evaluate_and_promote')['gate']['metric'] }}, "
             "paired bootstrap on one holdout):\n\n"
             "{{ ti.xcom_pull(task_ids='evaluate_and_promote')['gate']['reason'] }}\n\n"
             "Approve moves the `champion` alias to this version; Reject keeps the current champion. Both are "
             "recorded in the alias history with your reason.",
        options=[APPROVE, REJECT],
        params={"reason": Param("", type="string", description="Why (recorded in the alias history).")},
        retries=0,
    )

    @task(retries=0)
    def record_approval(gated: dict, answer: dict) -> dict:
        """Move or keep the alias as the person decided (a no-op when ``shopflow approve|reject`` answered)."""
        from pipelines import approval
        from pipelines.settings import get_settings as settings

        chosen = (answer.get("chosen_options") or [REJECT])[0]
        user = (answer.get("responded_by_user") or {}).get("name") or "unknown"
        reason = ((answer.get("params_input") or {}).get("reason") or "").strip() or f"{chosen} in Airflow"
        with user_errors_as(AirflowFailException):
            return approval.decide(settings(), spec.name, gated["version"], chosen == APPROVE, f"airflow:{user}",
                                   reason)

    gate_says = awaits_approval(gated)
    gate_says >> ask
    record_approval(gated, ask.output)


APPROVE, REJECT = "Approve", "Reject"


for _spec in load_registry().values():
    globals()[f"shopflow_train_{_spec.name}"] = build_model_dag(_spec)
