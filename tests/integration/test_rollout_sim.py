"""A/B rollout end to end: simulated traffic through the real Router + store + MLflow registry, stepped like the
DAG does, and the ``shopflow rollout`` CLI. No mocks: MLflow runs on SQLite with two tiny registered versions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipelines import tracking
from pipelines.rollout import Router, record_outcome
from pipelines.rollout import lifecycle
from pipelines.rollout.cli import app
from pipelines.rollout.store import get_store
from pipelines.settings import Settings
from tests.conftest import two_arm_settings, two_version_registry

pytestmark = pytest.mark.integration

MODEL = "churn"


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory) -> str:
    """An MLflow registry with versions 1 and 2 of a trivial model (logged for real, once)."""
    return two_version_registry(tmp_path_factory.mktemp("mlflow"), MODEL, "rollout-test")


@pytest.fixture
def fast_home(tmp_path):
    """A home on tmpfs when there is one: the store still fsyncs every commit (same code path), but tens of
    thousands of simulated requests then take seconds instead of minutes on a busy disk. Durability on a real
    disk is tested in tests/unit/test_rollout_store.py."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        home = Path(tempfile.mkdtemp(prefix="shopflow-rollout-", dir=shm))
        yield home
        shutil.rmtree(home, ignore_errors=True)
    else:
        yield tmp_path / "home"


@pytest.fixture
def settings(registry_uri, fast_home, monkeypatch) -> Settings:
    """Fresh rollout store per test; champion v1 / challenger v2 set fresh on the shared registry."""
    with two_arm_settings(monkeypatch, fast_home, registry_uri, MODEL) as s:
        yield s


def _sim_settings(s: Settings, **rollout) -> Settings:
    return s.model_copy(update={"rollout": s.rollout.model_copy(update={"min_samples_per_arm": 100, **rollout})})


def simulate(s: Settings, conversion: dict, *, error_rate: dict | None = None, slow_share: dict | None = None,
             batch: int = 500, max_requests: int = 40_000, seed: int = 0) -> tuple[dict, list[dict]]:
    """Serve visitors in batches through a Router, record purchases, and ``step`` after each batch.

    Every visitor is a new customer (one request each), so the true per-unit conversion of each arm is exactly
    ``conversion[arm]``.

    Returns:
        The final step result and all step results.
    """
    rng = np.random.default_rng(seed)
    router = Router(s, MODEL, cache_seconds=0.05)
    error_rate, slow_share = error_rate or {}, slow_share or {}
    steps, served = [], 0
    while served < max_requests:
        for _ in range(batch):
            uid = f"visitor-{served}"
            served += 1
            a = router.assign(uid)
            version = a.challenger_version if a.arm == "challenger" else a.champion_version
            slow = rng.random() < slow_share.get(a.arm, 0.0)
            latency = float(rng.uniform(600, 900) if slow else rng.lognormal(np.log(40), 0.3))
            failed = rng.random() < error_rate.get(a.arm, 0.0)
            router.log_request(uid, a, version, latency, error="HTTP 500" if failed else None)
            if not failed and rng.random() < conversion[a.arm]:
                record_outcome(s, MODEL, uid, "purchase")
        out = lifecycle.step(s, MODEL, actor="airflow:test")
        steps.append(out)
        if out["action"] in ("promote", "rollback", "none"):
            return out, steps
    raise AssertionError(f"no decision after {served} requests: {steps[-1]['reason']}")


def _champion(s: Settings) -> str:
    return str(tracking.version_by_alias(tracking.configure(s), MODEL, tracking.CHAMPION).version)


def test_better_challenger_ramps_through_every_weight_and_is_promoted(settings):
    s = _sim_settings(settings)
    lifecycle.start(s, MODEL, actor="tester", reason="sim: better challenger")
    final, steps = simulate(s, {"champion": 0.10, "challenger": 0.13})

    assert final["action"] == "promote", final["reason"]
    st = lifecycle.status(s, MODEL)
    assert st["status"] == "promoted" and st["weight_history"] == s.rollout.ramp
    assert [x["weight_after"] for x in steps if x["action"] == "ramp"] == s.rollout.ramp[1:]
    a = st["analysis"]  # the final analysis is stored with the experiment
    assert a["weight"] == s.rollout.ramp[-1] and not a["srm"]["mismatch"]
    assert a["sequential"]["always_valid_p"] <= s.rollout.alpha and a["effect"]["diff"] > 0
    assert a["effect"]["ci_low"] < 0.03 < a["effect"]["ci_high"] + 0.02  # near the true +3 points
    assert _champion(s) == "2"
    last = lifecycle.history(s, MODEL)[-1]
    assert (last["alias"], last["version"], last["previous_version"], last["actor"]) == ("champion", "2", "1",
                                                                                       "airflow:test")
    assert "significantly better" in last["reason"]
    # After the experiment every visitor is back on one model (now the old challenger, as champion).
    assert Router(s, MODEL, cache_seconds=0).assign("visitor-1").experiment_id is None


def test_worse_challenger_is_rolled_back_and_champion_stays(settings):
    s = _sim_settings(settings)
    lifecycle.start(s, MODEL, actor="tester")
    final, steps = simulate(s, {"champion": 0.10, "challenger": 0.07}, seed=1)

    assert final["action"] == "rollback" and "significantly worse" in final["reason"]
    st = lifecycle.status(s, MODEL)
    assert st["status"] == "rolled_back"
    assert st["weight_history"] == s.rollout.ramp[: len(st["weight_history"])]  # a prefix of the ramp
    assert st["analysis"]["effect"]["diff"] < 0
    assert _champion(s) == "1"
    last = lifecycle.history(s, MODEL)[-1]
    assert (last["alias"], last["version"], last["previous_version"]) == ("champion", "1", "1")
    assert "rolled back" in last["reason"] and "v2 rejected" in last["reason"]


@pytest.mark.parametrize("breach, expected", [
    ({"error_rate": {"challenger": 0.05}}, "error rate"),
    ({"slow_share": {"challenger": 0.05}}, "p99 latency"),
])
def test_guardrail_breach_rolls_back_at_the_first_weight(settings, breach, expected):
    s = _sim_settings(settings)
    lifecycle.start(s, MODEL, actor="tester")
    final, steps = simulate(s, {"champion": 0.10, "challenger": 0.10}, seed=2, **breach)

    assert final["action"] == "rollback" and expected in final["reason"], final["reason"]
    assert final["weight_before"] == s.rollout.ramp[0] and _champion(s) == "1"
    g = lifecycle.status(s, MODEL)["analysis"]["guardrails"]
    assert not g["champion"]["error_breach"] and not g["champion"]["latency_breach"]


def test_aa_experiment_holds_at_the_final_weight_without_promoting(settings):
    s = _sim_settings(settings)
    lifecycle.start(s, MODEL, actor="tester")
    with pytest.raises(AssertionError, match="no decision"):
        simulate(s, {"champion": 0.10, "challenger": 0.10}, max_requests=6000, seed=3)
    st = lifecycle.status(s, MODEL)
    assert st["status"] == "running" and st["weights"]["challenger"] == s.rollout.ramp[-1]
    assert st["recommendation"]["action"] == "hold" and _champion(s) == "1"


def test_gate_in_ab_mode_keeps_the_champion(settings):
    """The training gate's alias move honours ``promotion`` (real decisions on made-up holdout scores)."""
    from pipelines.promotion import GateDecision
    from pipelines.training import apply_gate_decision

    def spec_decision(challenger, score, champion, champion_score):
        return GateDecision(True, "wins", challenger, score, champion, champion_score, "auc")

    client = tracking.configure(settings)
    ab = settings.model_copy(update={"promotion": "ab"})
    win = spec_decision("2", 0.90, "1", 0.80)
    assert apply_gate_decision(ab, client, MODEL, win) == "awaiting A/B" and not win.promoted
    assert "promotion=ab" in win.reason and _champion(settings) == "1"
    # With no champion at all, the first winner still becomes champion in ab mode.
    client.delete_registered_model_alias(MODEL, tracking.CHAMPION)
    first = spec_decision("2", 0.90, None, None)
    assert apply_gate_decision(ab, client, MODEL, first) == "promoted" and _champion(settings) == "2"
    # offline (default): a winner replaces the champion, recorded in the history.
    offline = spec_decision("1", 0.95, "2", 0.90)
    assert apply_gate_decision(settings, client, MODEL, offline) == "promoted" and _champion(settings) == "1"
    rows = lifecycle.history(settings, MODEL)
    assert [(r["version"], r["previous_version"], r["actor"]) for r in rows] == [
        ("2", None, "training-gate"), ("1", "2", "training-gate")]


# ------------------------------------------------------------------ CLI
def _cli(*args: str):
    return CliRunner().invoke(app, list(args))


def test_cli_lifecycle_and_errors(settings):
    r = _cli("status", MODEL)
    assert r.exit_code == 1 and "no experiment" in r.output and "Traceback" not in r.output

    r = _cli("start", MODEL, "--actor", "alice", "--reason", "try v2")
    assert r.exit_code == 0, r.output
    assert "churn-1" in r.output and "5%" in r.output
    r = _cli("start", MODEL)
    assert r.exit_code == 1 and "already has a running experiment (churn-1)" in r.output
    assert r.output.count("\n") == 1  # one line, no traceback

    router = Router(settings, MODEL, cache_seconds=0)
    for i in range(300):
        a = router.assign(f"c{i}")
        router.log_request(f"c{i}", a, a.challenger_version if a.arm == "challenger" else "1", 30.0)
    r = _cli("status", MODEL, "--json")
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["status"] == "running" and st["weights"]["challenger"] == settings.rollout.ramp[0]
    assert sum(st["analysis"]["units"].values()) == 300 and st["recommendation"]["action"] == "hold"
    r = _cli("status", MODEL)
    assert r.exit_code == 0 and "recommendation: hold" in r.output and "SRM" in r.output

    r = _cli("step", MODEL, "--actor", "bob")
    assert r.exit_code == 0 and "hold" in r.output
    r = _cli("restore", MODEL, "1")
    assert r.exit_code == 1 and "running experiment" in r.output

    r = _cli("promote", MODEL, "--actor", "alice", "--reason", "looks good")
    assert r.exit_code == 0 and "v1 -> v2" in r.output
    assert _champion(settings) == "2"
    r = _cli("rollback", MODEL)
    assert r.exit_code == 1 and "no running experiment" in r.output

    r = _cli("restore", MODEL, "99")
    assert r.exit_code == 1 and "no registered version 99" in r.output
    r = _cli("restore", MODEL, "1", "--actor", "carol", "--reason", "v2 hurt revenue")
    assert r.exit_code == 0 and "v2 -> v1" in r.output and _champion(settings) == "1"

    r = _cli("history", MODEL, "--json")
    rows = json.loads(r.output)
    assert [(x["alias"], x["previous_version"], x["version"], x["actor"]) for x in rows] == [
        ("champion", "1", "2", "alice"), ("champion", "2", "1", "carol")]
    assert rows[1]["reason"] == "v2 hurt revenue"
    r = _cli("history", MODEL)
    assert r.exit_code == 0 and "carol" in r.output and "alias history" in r.output

    # A second experiment after the first ended; then a manual rollback.
    assert _cli("start", MODEL, "--metric", "revenue").exit_code == 0
    r = _cli("rollback", MODEL, "--reason", "not today")
    assert r.exit_code == 0 and "churn-2" in r.output and "champion stays v1" in r.output
    assert get_store(settings).latest(MODEL)["status"] == "rolled_back"


def test_cli_start_needs_two_distinct_versions(settings):
    client = tracking.configure(settings)
    client.set_registered_model_alias(MODEL, tracking.CHALLENGER, "1")
    r = _cli("start", MODEL)
    assert r.exit_code == 1 and "same version" in r.output
    client.delete_registered_model_alias(MODEL, tracking.CHALLENGER)
    r = _cli("start", MODEL)
    assert r.exit_code == 1 and "no 'challenger' alias" in r.output
    r = _cli("start", "nosuchmodel")
    assert r.exit_code == 1 and "no 'champion' alias" in r.output
    r = _cli("start", MODEL, "--metric", "views")
    assert r.exit_code == 1 and "metric must be one of" in r.output


def test_manual_promotion_needs_a_reason_and_is_recorded(settings):
    """`shopflow promote MODEL VERSION --reason`: the explicit path for a change the gate cannot judge."""
    from pipelines.cli import app as main_app

    def promote(*args: str):
        return CliRunner().invoke(main_app, ["promote", *args])

    r = promote(MODEL, "2")
    assert r.exit_code == 1 and "needs --reason" in r.output and r.output.count("\n") == 1
    assert _champion(settings) == "1"
    r = promote(MODEL, "99", "--reason", "x")
    assert r.exit_code == 1 and "no registered version 99" in r.output
    r = promote(MODEL, "2", "--reason", "horizon 90 -> 180 days", "--actor", "dana")
    assert r.exit_code == 0 and "v1 -> v2" in r.output and _champion(settings) == "2"
    last = lifecycle.history(settings, MODEL)[-1]
    assert (last["alias"], last["version"], last["actor"]) == ("champion", "2", "dana")
    assert last["reason"] == "manual promotion (gate bypassed): horizon 90 -> 180 days"
    assert promote("nosuchmodel", "1", "--reason", "x").exit_code == 2
