"""Production profile, for real: the A/B store on the local PostgreSQL server, sharing the database with MLflow."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from pipelines import tracking
from pipelines.rollout import Router, current_weights, lifecycle, record_outcome
from pipelines.rollout.store import PREFIX, ExperimentExists, RolloutStore, get_store, reset_stores
from pipelines.settings import Settings
from tests.conftest import run_concurrent_writers, throwaway_postgres

pytestmark = pytest.mark.production


@pytest.fixture
def pg_database():
    """A throwaway database; the store's pooled connections are closed before it is dropped."""
    with throwaway_postgres() as uri:
        yield uri
        reset_stores([uri])


@pytest.fixture
def prod(pg_database, tmp_path) -> Settings:
    s = Settings(home=tmp_path, profile="production",
                 production={"postgres_uri": pg_database, "artifact_uri": (tmp_path / "objstore").as_uri()})
    assert s.rollout_db_uri == pg_database
    return s


def test_store_on_postgres_is_durable_and_concurrent_writers_lose_nothing(prod):
    store = get_store(prod)
    exp = store.create_experiment("churn", "1", "2", "purchase", 0.25, "test", "pg")
    with pytest.raises(ExperimentExists):  # the partial unique index works on PostgreSQL too
        store.create_experiment("churn", "1", "2", "purchase", 0.25, "test", "again")

    def writer(target: RolloutStore, t: int) -> None:
        for i in range(40):
            target.log_request(exp["experiment_id"], "churn", f"t{t}-u{i}", "champion", 0.25, "1", float(i))
            target.log_outcome(exp["experiment_id"], "churn", f"t{t}-u{i}", "revenue", 2.5)

    assert run_concurrent_writers(store, 6, writer) == []
    reset_stores()

    code = ("import json, sys; from pipelines.rollout.store import RolloutStore; st = RolloutStore(sys.argv[1]); "
            "print(json.dumps({t: st.count(t) for t in ('requests', 'outcomes', 'rollouts')}))")
    out = subprocess.run([sys.executable, "-c", code, prod.rollout_db_uri], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == {"requests": 240, "outcomes": 240, "rollouts": 1}
    fresh = get_store(prod)
    sums = fresh.stage_metric(exp["experiment_id"], 0.25, exp["stage_started_at"], "revenue")
    assert sums["champion"] == (240, 600.0, 240 * 6.25)
    req = fresh.stage_requests(exp["experiment_id"], 0.25, exp["stage_started_at"], slow_ms=38.5)
    champion = req["champion"]
    assert champion["requests"] == 240 and champion["slow"] == 6 and champion["p99_latency_ms"] == 39.0


def test_rollout_lifecycle_on_postgres_beside_mlflow(prod):
    client = tracking.configure(prod)  # MLflow registry in the same PostgreSQL database
    client.create_registered_model("churn")
    for i in range(2):
        client.create_model_version("churn", source=(prod.home / f"src{i}").as_uri())
    lifecycle.move_alias(prod, "churn", tracking.CHAMPION, "1", "test", "first")
    lifecycle.move_alias(prod, "churn", tracking.CHALLENGER, "2", "test", "second")

    exp = lifecycle.start(prod, "churn", actor="tester")
    router = Router(prod, "churn", cache_seconds=0)
    for i in range(200):
        a = router.assign(f"c{i}")
        router.log_request(f"c{i}", a, a.challenger_version if a.arm == "challenger" else "1", 20.0)
        if i % 10 == 0:
            record_outcome(prod, "churn", f"c{i}", "purchase")
    assert current_weights(prod) == {"churn": prod.rollout.ramp[0]}
    st = lifecycle.status(prod, "churn")
    assert sum(st["analysis"]["units"].values()) == 200 and st["recommendation"]["action"] == "hold"
    out = lifecycle.step(prod, "churn", actor="airflow")
    assert out["action"] == "hold"
    lifecycle.promote(prod, "churn", actor="tester", reason="pg test")
    assert str(tracking.version_by_alias(client, "churn", tracking.CHAMPION).version) == "2"
    assert [(h["alias"], h["previous_version"], h["version"]) for h in lifecycle.history(prod, "churn")] == [
        ("champion", None, "1"), ("challenger", None, "2"), ("champion", "1", "2")]

    engine = sa.create_engine(prod.rollout_db_uri)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"registered_models", f"{PREFIX}requests", f"{PREFIX}alias_history"} <= tables
    assert exp["experiment_id"] == "churn-1"
