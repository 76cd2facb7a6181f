"""One A/B ramp DAG per model family, generated from the model-spec registry.

Every 15 minutes ``shopflow_rollout_<model>`` runs one evaluation of the model's running A/B experiment
(``pipelines.rollout.step``): roll back on a guardrail breach, a sample-ratio mismatch or a significantly worse
challenger; ramp the challenger's share to the next configured weight once both arms have enough units; promote at
the last weight when the challenger is significantly better (always-valid sequential test, safe to run at every
tick); otherwise hold. Without a running experiment the task does nothing. Start one with
``shopflow rollout start <model>``; see docs/rollout.md.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from pipelines.registry import load_registry

DEFAULT_ARGS = {"owner": "shopflow", "retries": 2, "retry_delay": timedelta(seconds=30)}


def build_rollout_dag(spec):
    """The ``shopflow_rollout_<model>`` DAG of one family."""

    @dag(
        dag_id=f"shopflow_rollout_{spec.name}",
        schedule=timedelta(minutes=15),
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # two overlapping evaluations would race on the same experiment
        default_args=DEFAULT_ARGS,
        tags=["shopflow", "rollout", spec.name],
        doc_md=f"### A/B ramp of `{spec.name}`\n\n{__doc__}",
    )
    def rollout_dag():
        @task
        def step() -> dict:
            """Evaluate the running experiment once and act: roll back, ramp, promote or hold."""
            from pipelines.rollout import step as rollout_step
            from pipelines.settings import get_settings

            out = rollout_step(get_settings(), spec.name, actor="airflow:shopflow_rollout")
            # The full analysis is stored with the event; XCom keeps the decision small.
            return {k: out[k] for k in ("model", "experiment_id", "action", "reason", "weight_before",
                                        "weight_after")}

        step()

    return rollout_dag()


for _spec in load_registry().values():
    globals()[f"shopflow_rollout_{_spec.name}"] = build_rollout_dag(_spec)
