"""Answer a training DAG's pending approval task from the command line, as the Airflow UI's Required Actions do.

``shopflow approve|reject`` decides in the registry first (:mod:`pipelines.approval`), then runs this in Airflow's
environment so a DAG run parked at ``approve_promotion`` for that version resumes with the same answer (its
``record_approval`` task then finds the decision made and changes nothing). The update is the one Airflow's REST
endpoint makes (``PATCH .../hitlDetails``): record the response, then resume the parked task.

Usage: ``python -m shopflow_airflow.hitl DAG_ID VERSION OPTION USER REASON``; prints how many tasks it answered.
"""

from __future__ import annotations

import json
import sys

TASK_ID = "approve_promotion"


def respond(dag_id: str, version: str, option: str, user: str, reason: str) -> int:
    """Answer every parked ``approve_promotion`` task of ``dag_id`` that asks about ``version``."""
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    from airflow._shared.timezones import timezone
    from airflow.models.hitl import HITLUser
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState

    answered = 0
    with create_session() as session:
        waiting = session.scalars(
            select(TI).where(TI.dag_id == dag_id, TI.task_id == TASK_ID,
                             TI.state.in_([TaskInstanceState.AWAITING_INPUT, TaskInstanceState.DEFERRED]))
            .options(joinedload(TI.hitl_detail))).unique().all()
        for ti in waiting:
            detail = ti.hitl_detail
            if detail is None or detail.response_received or f" v{version} " not in f" {detail.subject} ":
                continue
            if option not in (detail.options or []):
                raise SystemExit(f"option {option!r} is not one of {detail.options}")
            detail.responded_by = HITLUser(id=user, name=user)
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [option]
            detail.params_input = {"reason": reason}
            session.add(detail)
            handle_event_submit(TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session)
            answered += 1
    return answered


if __name__ == "__main__":
    dag, ver, opt, who, why = sys.argv[1:6]
    print(json.dumps({"answered": respond(dag, ver, opt, who, why)}))
