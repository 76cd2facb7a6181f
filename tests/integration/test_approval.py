"""Human approval of a promotion (issue 11, item 4): the training DAG parks at Airflow's human-in-the-loop task
with the gate's evidence; an answer moves or keeps the champion and lands in the alias history."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pipelines.settings import get_settings
from tests.conftest import BIN, SMALL_CUSTOMERS, shopflow, two_arm_settings, two_version_registry

pytestmark = pytest.mark.integration

MODEL = "forecasting"  # wins its gate clearly on the small generated shop (churn does not, there)


def _history(settings, model: str) -> list[dict]:
    from pipelines.rollout.lifecycle import history

    return history(settings, model)


def test_decisions_move_or_keep_the_champion_once_with_a_reason(tmp_path: Path, monkeypatch) -> None:
    from pipelines import approval, tracking

    uri = two_version_registry(tmp_path / "mlflow", "approval_model", "approval-test")
    with two_arm_settings(monkeypatch, tmp_path / "home", uri, "approval_model") as s:
        client = tracking.configure(s)
        with pytest.raises(approval.ApprovalError, match="not awaiting approval"):
            approval.decide(s, "approval_model", "2", True, "cli:test", "ship it")
        approval.request(client, "approval_model", "2", "auc 0.9 vs best baseline 0.8: holds up")
        assert approval.pending(s, "approval_model", "2")["state"] == "pending"
        with pytest.raises(approval.ApprovalError, match="--reason"):
            approval.decide(s, "approval_model", "2", False, "cli:test", "  ")
        out = approval.decide(s, "approval_model", "2", False, "cli:ann", "too risky before the sale")
        assert out["changed"] and out["champion"] == "1"
        assert str(tracking.version_by_alias(client, "approval_model", tracking.CHAMPION).version) == "1"
        last = _history(s, "approval_model")[-1]
        assert last["actor"] == "cli:ann" and "rejected v2: too risky" in last["reason"] and last["version"] == "1"
        # Once decided: the same answer again is a no-op, the other one an error.
        assert not approval.decide(s, "approval_model", "2", False, "airflow:bob", "again")["changed"]
        with pytest.raises(approval.ApprovalError, match="not awaiting approval"):
            approval.decide(s, "approval_model", "2", True, "cli:ann", "changed my mind")
        with pytest.raises(approval.ApprovalError, match="no registered version 9"):
            approval.decide(s, "approval_model", "9", True, "cli:ann", "x")


def test_the_training_dag_waits_for_a_person_and_the_cli_answer_resumes_it(tmp_path: Path) -> None:
    from pipelines import tracking

    home = tmp_path / "home"
    env = dict(os.environ, SHOPFLOW_HOME=str(home), SHOPFLOW_CUSTOMERS=str(SMALL_CUSTOMERS),
               SHOPFLOW_PROMOTION="approve", SHOPFLOW_GATE__CONFIDENCE="0.51")
    run = subprocess.Popen([str(BIN / "shopflow"), "run", "--model", MODEL], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        os.environ["SHOPFLOW_HOME"] = str(home)
        get_settings.cache_clear()
        settings = get_settings()
        deadline = time.monotonic() + 1500
        state, tags, client = None, {}, None
        while time.monotonic() < deadline and run.poll() is None:
            if (settings.home / "mlflow.db").exists():
                client = tracking.configure(settings)
                versions = client.search_model_versions(f"name='{MODEL}'") if _registered(client) else []
                tags = versions[0].tags if versions else {}
                state = tags.get("shopflow.approval")
                if state == "pending" or tags.get("shopflow.gate") not in (None, "awaiting approval"):
                    break
            time.sleep(3)
        if state != "pending":
            pytest.fail(f"v1 never awaited approval (gate: {tags.get('shopflow.gate')!r}, "
                        f"{tags.get('shopflow.gate_reason')!r}); run output:\n{_finish(run)[-3000:]}")
        log = home / "logs"
        time.sleep(5)
        assert run.poll() is None, "the DAG run must wait for the answer"
        assert tracking.version_by_alias(client, MODEL, tracking.CHAMPION) is None
        out = shopflow(home, "approve", MODEL, "1", "--reason", "checked the lift chart", "--actor", "cli:ann",
                       SHOPFLOW_PROMOTION="approve").stdout
        assert "approved and now champion" in out and "got the same answer" in out, out
        output = _finish(run, timeout=900)
        assert run.returncode == 0, output[-3000:]
        assert str(tracking.version_by_alias(client, MODEL, tracking.CHAMPION).version) == "1"
        moves = [h for h in _history(settings, MODEL) if h["alias"] == "champion"]
        assert len(moves) == 1 and moves[0]["actor"] == "cli:ann" and "checked the lift chart" in moves[0]["reason"]
        dag_log = next(log.rglob(f"shopflow_train_{MODEL}.log")).read_text(errors="replace")
        assert "Waiting for Human-in-the-loop input" in dag_log and "record_approval" in dag_log
        # Answering again is a clear one-line no-op, never a traceback.
        again = shopflow(home, "approve", MODEL, "1", "--reason", "again", check=False)
        assert again.returncode == 0 and "already approved" in again.stdout and "Traceback" not in again.stderr
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 15)
            run.wait(60)
        get_settings.cache_clear()


def _registered(client) -> bool:
    return bool(client.search_registered_models(f"name='{MODEL}'"))


def _finish(proc: subprocess.Popen, timeout: int = 60) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 15)
        out, _ = proc.communicate(timeout=60)
    return out or ""
