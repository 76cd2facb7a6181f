"""Fault injection: kill -9 the data pipeline at each step boundary, check what is stored, rerun plainly, check it healed.

Real runs only: the data DAG through ``airflow dags test`` (what ``shopflow run`` drives) and the real ``shopflow``
console script, killed by the ``SHOPFLOW_FAULT_AT`` test hook (:mod:`pipelines.faults`: SIGKILL of its own process at
the named point, like ``kill -9``). After every kill: CURRENT names an accepted batch and a complete snapshot built
from *that* batch; training joins exactly that snapshot; the Feast registry serves the feature services; the online
store holds the values of the previous or the new snapshot; nothing half-built is visible. After a plain rerun: the
new batch is CURRENT with its own features, nothing is pending, the history records the switch.
"""

from __future__ import annotations

import contextlib
import os

import pandas as pd
import pytest

from pipelines import orchestration
from pipelines.data.current import read_current, read_history, read_pending
from pipelines.data.generator import generate
from pipelines.features import snapshot, store
from pipelines.features.build import FEATURE_TABLES, feature_path
from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import Settings
from tests.conftest import SMALL_CUSTOMERS, shopflow

pytestmark = pytest.mark.integration

CUSTOMER = "C000001"  # every generated shop has it, with another history per seed
FEATURES = ["recency_days", "frequency_90d", "monetary_90d"]


@contextlib.contextmanager
def _fault(point: str | None):
    old = os.environ.pop("SHOPFLOW_FAULT_AT", None)
    if point:
        os.environ["SHOPFLOW_FAULT_AT"] = point
    try:
        yield
    finally:
        os.environ.pop("SHOPFLOW_FAULT_AT", None)
        if old is not None:
            os.environ["SHOPFLOW_FAULT_AT"] = old


def _data_dag(settings: Settings, fault: str | None = None) -> orchestration.DagRunResult:
    log_dir = settings.home / "logs" / (fault or "rerun")
    orchestration.ensure_airflow_db(settings, log_dir)
    with _fault(fault):
        return orchestration.test_dag(settings, "shopflow_data", None, log_dir)


def _land(settings: Settings, seed: int) -> str:
    return generate(settings.landing_dir, settings.truth_dir, customers=SMALL_CUSTOMERS, seed=seed).batch_id


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Settings:
    """A home where one batch went through the data DAG (accepted, features built and switched in)."""
    settings = Settings(home=tmp_path_factory.mktemp("faults") / "home")
    first = _land(settings, seed=100)
    assert _data_dag(settings).ok
    assert read_current(settings).batch_id == first
    return settings


def _newest(settings: Settings, sid: str) -> pd.Series:
    rfm = pd.read_parquet(feature_path(snapshot.snapshot_dir(settings, sid), "customer_rfm"))
    rows = rfm[rfm["customer_id"] == CUSTOMER]
    return rows.loc[rows["event_timestamp"].idxmax(), FEATURES]


def assert_consistent(settings: Settings, online_from: set[str]) -> None:
    """The stored state any reader may see right now is consistent (see the module doc)."""
    current = read_current(settings)
    assert current is not None and current.snapshot_id is not None
    assert (settings.batches_dir / current.batch_id / "report.json").exists()
    manifest = snapshot.read_manifest(settings, current.snapshot_id)
    assert manifest["batch_id"] == current.batch_id, "CURRENT pairs a batch with another batch's features"
    sdir = snapshot.snapshot_dir(settings, current.snapshot_id)
    for table in FEATURE_TABLES:
        assert len(pd.read_parquet(feature_path(sdir, table))) == manifest["rows"][table]
    visible = {p.name for p in settings.features_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert visible == set(snapshot.list_snapshots(settings)), "a half-built snapshot is visible"
    pending = read_pending(settings)
    assert pending is None or (settings.batches_dir / pending).is_dir() or (settings.landing_dir / pending).is_dir()

    # Training joins CURRENT's snapshot (and a pinned run keeps it), the registry serves the services...
    assert snapshot.features_root(settings) == sdir
    pinned = snapshot.pinned(settings)
    assert current_batch_dir(pinned).name == current.batch_id
    assert store.feature_names(settings, "churn_v1")
    t = pd.read_parquet(feature_path(sdir, "customer_rfm"), columns=["event_timestamp"])["event_timestamp"].max()
    joined = store.training_frame(pinned, pd.DataFrame({"customer_id": [CUSTOMER], "event_timestamp": [t]}),
                                  "churn_v1")
    assert joined.loc[0, FEATURES].astype(float).tolist() == pytest.approx(
        _newest(settings, current.snapshot_id).astype(float).tolist())
    # ... and serving has the values of one of the snapshots this run was between (that exist by now).
    online = store.online_features(settings, [CUSTOMER], "churn_v1").loc[0, FEATURES].astype(float).tolist()
    built = [sid for sid in online_from if sid in snapshot.list_snapshots(settings)]
    assert any(online == pytest.approx(_newest(settings, sid).astype(float).tolist()) for sid in built), online


def assert_healed(settings: Settings, batch: str) -> None:
    current = read_current(settings)
    assert current.batch_id == batch and current.snapshot_id == snapshot.snapshot_id(batch)
    assert read_pending(settings) is None
    assert not list(settings.features_dir.glob(f"{snapshot.BUILDING_PREFIX}*"))
    switches = [e for e in read_history(settings) if e["event"] == "switch" and e["batch_id"] == batch]
    assert len(switches) == 1, switches
    assert_consistent(settings, {current.snapshot_id})


DAG_POINTS = [("after_accept", 101), ("during_build", 102), ("after_materialize", 103), ("after_switch", 105)]


@pytest.mark.parametrize(("point", "seed"), DAG_POINTS, ids=[p for p, _ in DAG_POINTS])
def test_data_dag_killed_at_a_boundary_is_consistent_and_a_plain_rerun_heals(home: Settings, point: str,
                                                                             seed: int) -> None:
    before = read_current(home)
    new = _land(home, seed)
    killed = _data_dag(home, fault=point)
    assert not killed.ok and f"SHOPFLOW_FAULT_AT={point}" in killed.log_path.read_text()

    expected = new if point == "after_switch" else before.batch_id
    assert read_current(home).batch_id == expected
    assert_consistent(home, {before.snapshot_id, snapshot.snapshot_id(new)})
    if point == "during_build":
        assert list(home.features_dir.glob(f"{snapshot.BUILDING_PREFIX}*"))  # the kill really hit mid-build

    rerun = _data_dag(home)
    assert rerun.ok, rerun.log_path.read_text()[-3000:]
    assert_healed(home, new)


@pytest.mark.parametrize(("point", "seed"), [("after_build", 106), ("before_switch", 104)])
def test_shopflow_data_use_killed_then_rerun_heals(home: Settings, point: str, seed: int) -> None:
    """The explicit path: `shopflow validate` accepts, `shopflow data use` is killed, the same command again heals."""
    before = read_current(home)
    new = _land(home, seed=seed)
    assert "is accepted" in shopflow(home.home, "validate", new).stdout
    assert read_current(home) == before and read_pending(home) == new

    killed = shopflow(home.home, "data", "use", new, "--reason", "fault test", check=False,
                      SHOPFLOW_FAULT_AT=point)
    assert killed.returncode == -9
    assert read_current(home) == before
    assert_consistent(home, {before.snapshot_id, snapshot.snapshot_id(new)})

    healed = shopflow(home.home, "data", "use", new, "--reason", "fault test")
    assert f"CURRENT is now batch {new}" in healed.stdout
    assert_healed(home, new)
    assert read_current(home).reason == "fault test"


def test_shopflow_run_killed_after_feast_apply_then_plain_rerun_trains_on_the_new_batch(home: Settings) -> None:
    """The trial's scenario through `shopflow run --no-generate`: killed mid-way, rerun without --force, trained on
    the new batch with the new batch's features."""
    from pipelines import tracking

    before = read_current(home)
    new = _land(home, seed=107)
    killed = shopflow(home.home, "run", "--no-generate", "--model", "churn", check=False,
                      SHOPFLOW_FAULT_AT="after_apply")
    assert killed.returncode == 1 and "shopflow_data: " in killed.stdout and "FAILED" in killed.stdout
    assert "quarantined" not in killed.stdout  # the failure is not blamed on an old quarantined batch
    assert read_current(home) == before
    assert_consistent(home, {before.snapshot_id})

    rerun = shopflow(home.home, "run", "--no-generate", "--model", "churn")
    assert "shopflow_data: ok" in rerun.stdout and "shopflow_train_churn: ok" in rerun.stdout
    assert_healed(home, new)
    client = tracking.configure(home)
    champion_or_challenger = tracking.version_by_alias(client, "churn", tracking.CHALLENGER)
    assert champion_or_challenger.tags["shopflow.data_snapshot"] == new
    assert f"CURRENT: batch {new}, feature snapshot {snapshot.snapshot_id(new)}" in rerun.stdout


def test_an_earlier_batch_landing_again_does_not_move_current_and_data_use_does(home: Settings) -> None:
    """The trial re-imported an earlier good batch: "passed 62 checks", CURRENT silently stayed on the bad one."""
    import shutil

    before = read_current(home)
    earlier = next(e["batch_id"] for e in read_history(home) if e["event"] == "accept")
    assert earlier != before.batch_id

    shutil.copytree(home.batches_dir / earlier, home.landing_dir / earlier)  # the same content landing again
    run = _data_dag(home)
    assert not run.ok and f"`shopflow data use {earlier}`" in run.log_path.read_text()
    assert read_current(home) == before

    shutil.copytree(home.batches_dir / earlier, home.landing_dir / earlier)
    out = shopflow(home.home, "validate", earlier).stdout
    assert "was accepted before" in out and f"CURRENT stays at {before.batch_id}" in out
    assert f"shopflow data use {earlier}" in out and read_current(home) == before

    moved = shopflow(home.home, "data", "use", earlier, "--reason", "back to the good export").stdout
    assert f"CURRENT is now batch {earlier}" in moved
    now = read_current(home)
    assert (now.batch_id, now.reason) == (earlier, "back to the good export")
    assert_consistent(home, {snapshot.snapshot_id(earlier)})
    history = shopflow(home.home, "data", "history", "--json").stdout
    assert "back to the good export" in history
    listing = shopflow(home.home, "data", "list").stdout
    assert earlier in listing and "CURRENT" in listing

    shopflow(home.home, "data", "use", before.batch_id, "--reason", "restore for the other tests")
    assert read_current(home).batch_id == before.batch_id
