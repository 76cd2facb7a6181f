"""The durable A/B store and the serving-side Router (SQLite, the local profile's real code path)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from pipelines.rollout import Assignment, Router, current_weights, record_outcome
from pipelines.rollout.assign import arm_for
from pipelines.rollout.store import (PREFIX, ROLLED_BACK, ExperimentExists, RolloutStore, get_store,
                                     reset_stores)
from pipelines.settings import Settings
from tests.conftest import run_concurrent_writers

EVENT_TABLES = ("requests", "outcomes", "rollout_events", "alias_history")


@pytest.fixture
def s(tmp_path):
    settings = Settings(home=tmp_path / "home")
    yield settings
    reset_stores([settings.rollout_db_uri])


def _experiment(store: RolloutStore, model: str = "churn", weight: float = 0.25) -> dict:
    return store.create_experiment(model, "1", "2", "purchase", weight, "test", "unit test")


def test_sqlite_is_durable_by_configuration(s):
    store = get_store(s)
    store.count("requests")  # first use creates the tables
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert set(sa.inspect(store.engine).get_table_names()) >= {f"{PREFIX}{t}" for t in (*EVENT_TABLES, "rollouts")}


def test_no_connection_or_file_before_first_use(tmp_path):
    s = Settings(home=tmp_path / "lazy")
    Router(s, "churn")  # constructing the serving objects must not touch the database
    assert not (tmp_path / "lazy" / "rollout.db").exists()


def test_events_survive_closing_and_a_new_process(s):
    store = get_store(s)
    exp = _experiment(store)
    for i in range(25):
        store.log_request(exp["experiment_id"], "churn", f"u{i}", "champion", 0.25, "1", 12.5 + i)
    store.log_outcome(exp["experiment_id"], "churn", "u3", "revenue", 19.99)
    store.log_alias_change("churn", "champion", "2", "1", "test", "why not")
    reset_stores()  # close every pooled connection of this process

    code = (
        "import json, sys; from pipelines.rollout.store import RolloutStore; "
        "st = RolloutStore(sys.argv[1]); "
        "print(json.dumps({t: st.count(t) for t in ('requests', 'outcomes', 'alias_history', 'rollouts')} | "
        "{'latency': st.requests(sys.argv[2])[-1]['latency_ms'], 'running': st.running('churn')[0]['weight']}))"
    )
    out = subprocess.run([sys.executable, "-c", code, s.rollout_db_uri, exp["experiment_id"]],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"requests": 25, "outcomes": 1, "alias_history": 1, "rollouts": 1,
                                      "latency": 36.5, "running": 0.25}


def test_concurrent_writers_lose_nothing(s):
    store = get_store(s)
    exp = _experiment(store)

    def writer(target: RolloutStore, t: int) -> None:
        for i in range(60):
            target.log_request(exp["experiment_id"], "churn", f"t{t}-u{i}", "challenger", 0.25, "2", 1.0)
            if i % 3 == 0:
                target.log_outcome(exp["experiment_id"], "churn", f"t{t}-u{i}", "purchase")

    assert run_concurrent_writers(store, 8, writer) == []
    rows = store.requests(exp["experiment_id"])
    assert len(rows) == 8 * 60 and len({r["unit_id"] for r in rows}) == 8 * 60
    assert store.count("outcomes", exp["experiment_id"]) == 8 * 20


def test_event_tables_are_never_updated_or_deleted(s):
    store = get_store(s)
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cur, stmt, params, ctx, many: statements.append(stmt))
    exp = _experiment(store, weight=0.05)
    store.log_request(exp["experiment_id"], "churn", "u1", "champion", 0.05, "1", 3.0)
    store.log_outcome(exp["experiment_id"], "churn", "u1", "click")
    assert store.transition(exp["experiment_id"], "ramp", "test", "more", {"x": 1}, expect_weight=0.05,
                            weight=0.25, stage=1)
    assert store.transition(exp["experiment_id"], "rollback", "test", "enough", {"x": 2}, status=ROLLED_BACK)
    store.log_alias_change("churn", "champion", "1", "1", "test", "kept")
    writes = [st for st in statements if st.lstrip().upper().startswith(("UPDATE", "DELETE"))]
    assert writes and all(f"{PREFIX}rollouts" in w for w in writes)  # only the state table changes in place
    for table in EVENT_TABLES:
        assert not any(f"{PREFIX}{table} " in w or f"{PREFIX}{table}\n" in w for w in writes), table
    actions = [e["action"] for e in store.events(exp["experiment_id"])]
    assert actions == ["start", "ramp", "rollback"]


def test_one_running_experiment_per_model_and_guarded_transitions(s):
    store = get_store(s)
    first = _experiment(store, weight=0.05)
    with pytest.raises(ExperimentExists):
        _experiment(store)
    assert _experiment(store, model="ltv")["experiment_id"] == "ltv-1"  # other models are independent
    # A transition against a stale view (wrong weight) does nothing.
    assert not store.transition(first["experiment_id"], "ramp", "test", "stale", expect_weight=0.25, weight=0.5)
    assert store.running("churn")[0]["weight"] == 0.05
    assert store.transition(first["experiment_id"], "rollback", "test", "done", status=ROLLED_BACK)
    assert not store.transition(first["experiment_id"], "rollback", "test", "twice", status=ROLLED_BACK)
    second = _experiment(store)
    assert second["experiment_id"] == "churn-2"  # a new salt: units are reshuffled
    assert store.latest("churn")["experiment_id"] == "churn-2"
    assert current_weights(s) == {"churn": 0.25, "ltv": 0.25}


def test_stage_queries_count_units_metric_and_p99(s):
    store = get_store(s)
    exp = _experiment(store, weight=0.25)
    eid, since = exp["experiment_id"], exp["stage_started_at"]
    for i in range(200):
        arm = "challenger" if i < 50 else "champion"
        store.log_request(eid, "churn", f"u{i}", arm, 0.25, "2" if i < 50 else "1", float(i),
                          error="boom" if i in (3, 4) else None)
    store.log_request(eid, "churn", "u0", "challenger", 0.25, "2", 5.0)  # a second request of a known unit
    store.log_request(eid, "churn", "late", "champion", 0.05, "1", 1.0)  # stale router weight: not this stage
    for uid, kind, value in [("u1", "purchase", 1), ("u1", "purchase", 1), ("u60", "purchase", 1),
                             ("u2", "revenue", 30.0), ("u2", "revenue", 10.0), ("u70", "revenue", 5.0)]:
        store.log_outcome(eid, "churn", uid, kind, value)
    req = store.stage_requests(eid, 0.25, since, slow_ms=190.0)
    assert req["challenger"] == {"units": 50, "requests": 51, "errors": 2, "slow": 0, "p99_latency_ms": 49.0}
    # Champion latencies are 50..199: nearest-rank p99 of 150 values is the 2nd largest.
    champion = req["champion"]
    assert champion["units"] == 150 and champion["slow"] == 9 and champion["p99_latency_ms"] == 198.0
    conv = store.stage_metric(eid, 0.25, since, "purchase")
    assert conv == {"challenger": (50, 1.0, 1.0), "champion": (150, 1.0, 1.0)}  # conversion: u1 counts once
    rev = store.stage_metric(eid, 0.25, since, "revenue")
    assert rev == {"challenger": (50, 40.0, 1600.0), "champion": (150, 5.0, 25.0)}


def test_bad_events_name_the_field(s):
    store = get_store(s)
    exp = _experiment(store)
    eid = exp["experiment_id"]
    with pytest.raises(ValueError, match="arm"):
        store.log_request(eid, "churn", "u1", "treatment", 0.25, "2", 1.0)
    with pytest.raises(ValueError, match="latency_ms"):
        store.log_request(eid, "churn", "u1", "champion", 0.25, "1", float("nan"))
    with pytest.raises(ValueError, match="unit_id"):
        store.log_request(eid, "churn", "", "champion", 0.25, "1", 1.0)
    with pytest.raises(ValueError, match="kind"):
        record_outcome(s, "churn", "u1", "view")
    with pytest.raises(ValueError, match="value"):
        record_outcome(s, "churn", "u1", "revenue", "lots")
    with pytest.raises(ValueError, match="unit_id"):
        record_outcome(s, "churn", None, "click")
    assert store.count("requests") == 0 and store.count("outcomes") == 0


def test_outcomes_only_go_to_the_models_own_experiments(s):
    store = get_store(s)
    churn = _experiment(store, "churn")["experiment_id"]
    ltv = _experiment(store, "ltv")["experiment_id"]
    with pytest.raises(ValueError, match="experiment_id .* is not an experiment of model 'churn'"):
        record_outcome(s, "churn", "u1", "click", experiment_id=ltv)
    with pytest.raises(ValueError, match="experiment_id"):
        record_outcome(s, "churn", "u1", "click", experiment_id="churn-999")
    assert store.count("outcomes") == 0
    record_outcome(s, "churn", "u1", "click", experiment_id=churn)
    assert store.count("outcomes", churn) == 1 and store.count("outcomes", ltv) == 0


# ------------------------------------------------------------------ Router / record_outcome
def test_router_without_experiment_serves_champion_and_logs_nothing(s):
    router = Router(s, "churn", cache_seconds=0)
    a = router.assign("u1")
    assert a == Assignment("champion", None, 0.0, None, None)
    router.log_request("u1", a, "1", 10.0)
    record_outcome(s, "churn", "u1", "purchase")  # no experiment: not recorded
    store = get_store(s)
    assert store.count("requests") == 0 and store.count("outcomes") == 0


def test_router_is_sticky_logs_durably_and_follows_the_state_after_its_cache_expires(s):
    store = get_store(s)
    exp = _experiment(store, weight=0.05)
    eid = exp["experiment_id"]
    fast, slow = Router(s, "churn", cache_seconds=0.2), Router(s, "churn", cache_seconds=60)
    units = [f"c{i}" for i in range(400)]
    first = {u: fast.assign(u) for u in units}
    assert all(first[u].arm == arm_for(eid, u, 0.05) for u in units)
    assert {u: fast.assign(u).arm for u in units} == {u: a.arm for u, a in first.items()}  # sticky
    assert first["c1"].experiment_id == eid and first["c1"].challenger_version == "2"
    slow.assign("c0")  # loads (and caches) the 5% state

    for u in units[:10]:
        fast.log_request(u, first[u], first[u].challenger_version if first[u].arm == "challenger" else "1", 7.0)
    record_outcome(s, "churn", "c3", "purchase")
    assert store.count("requests", eid) == 10 and store.count("outcomes", eid) == 1

    assert store.transition(eid, "ramp", "test", "ramp", expect_weight=0.05, weight=0.5, stage=1)
    time.sleep(0.3)
    ramped = {u: fast.assign(u) for u in units}
    assert all(a.challenger_weight == 0.5 for a in ramped.values())
    moved = [u for u in units if first[u].arm != ramped[u].arm]
    assert moved and all(first[u].arm == "champion" for u in moved)  # only champion -> challenger
    assert slow.assign("c0").challenger_weight == 0.05  # its cache has not expired yet

    assert store.transition(eid, "rollback", "test", "stop", status=ROLLED_BACK)
    time.sleep(0.3)
    assert {fast.assign(u).arm for u in units} == {"champion"}
    assert current_weights(s) == {}


def test_router_keeps_the_last_split_when_the_store_is_unreadable(s):
    store = get_store(s)
    exp = _experiment(store, weight=0.5)
    router = Router(s, "churn", cache_seconds=0)
    before = router.assign("u1")
    with store.engine.begin() as conn:  # simulate a broken store under a running service
        conn.exec_driver_sql(f"ALTER TABLE {PREFIX}rollouts RENAME TO broken")
    assert router.assign("u1") == before and before.experiment_id == exp["experiment_id"]
