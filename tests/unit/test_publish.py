"""Publishing a batch: its features are built aside and materialised, then batch and features switch in one step.

Accepted batches are hand-made here (tiny tables in ``batches_dir``, as the gate leaves them); Feast is real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipelines import publish
from pipelines.data import current as pointers
from pipelines.features import snapshot, store
from pipelines.features.snapshot import current_batch_dir
from pipelines.paths import InvalidIdError
from pipelines.settings import Settings
from tests.unit.test_features import tiny_tables, with_order, write_batch

ENTITY = {"customer_id": ["c2"], "event_timestamp": ["2024-03-01"]}


def _accept(settings: Settings, batch_id: str, tables) -> str:
    """What the gate leaves behind: the batch in ``batches_dir`` and PENDING naming it."""
    write_batch(tables, settings.batches_dir / batch_id)
    with pointers.pointer_lock(settings):
        pointers.write_pending(settings, batch_id)
    return batch_id


def _pipeline(settings: Settings, batch_id: str) -> str:
    """The data DAG's steps after the gate."""
    publish.check_publishable(settings, batch_id)
    sid = publish.build(settings, batch_id)
    publish.apply(settings)
    publish.materialize(settings, batch_id, sid)
    publish.switch(settings, batch_id, sid, reason="test pipeline")
    return sid


def _c2_orders_90d(settings: Settings) -> int:
    """c2's 90-day order count as training joins it (offline) from what CURRENT names."""
    import pandas as pd

    frame = store.training_frame(settings, pd.DataFrame(ENTITY).assign(
        event_timestamp=lambda d: pd.to_datetime(d["event_timestamp"], utc=True)), "churn_v1")
    return int(frame.loc[0, "frequency_90d"])


def _c2_orders_online(settings: Settings) -> int:
    return int(store.online_features(settings, ["c2"], "churn_v1").loc[0, "frequency_90d"])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home")


def test_batch_and_features_switch_together_and_readers_never_mix(settings: Settings) -> None:
    b1 = _accept(settings, "b1", tiny_tables())
    s1 = _pipeline(settings, b1)
    current = pointers.read_current(settings)
    assert (current.batch_id, current.snapshot_id) == ("b1", s1) and s1.startswith("b1-")
    assert pointers.read_pending(settings) is None
    assert snapshot.current_snapshot(settings) == s1 and current_batch_dir(settings) == settings.batches_dir / "b1"
    assert _c2_orders_90d(settings) == 0 == _c2_orders_online(settings)
    pinned = snapshot.pinned(settings)  # what a training run does first

    # b2: c2 ordered. Built and materialised aside, CURRENT (and what training joins) stays b1 until the switch.
    b2 = _accept(settings, "b2", with_order(tiny_tables(), "c2", "2024-02-20", 30.0))
    s2 = publish.build(settings, b2)
    publish.apply(settings)
    publish.materialize(settings, b2, s2)
    assert pointers.read_current(settings).batch_id == "b1" and _c2_orders_90d(settings) == 0
    assert _c2_orders_online(settings) == 1  # serving gets the newest values first (see pipelines/publish.py)
    publish.switch(settings, b2, s2, reason="test")
    assert (pointers.read_current(settings).batch_id, snapshot.current_snapshot(settings)) == ("b2", s2)
    assert _c2_orders_90d(settings) == 1

    # A run pinned before the switch keeps reading b1's batch and b1's features.
    assert current_batch_dir(pinned) == settings.batches_dir / "b1" and _c2_orders_90d(pinned) == 0
    assert snapshot.current_snapshot(pinned) == s1
    # Each snapshot is a complete, separate folder; nothing was rewritten in place.
    assert snapshot.list_snapshots(settings) == sorted([s1, s2])
    assert [e["event"] for e in pointers.read_history(settings)] == ["switch", "switch"]


def test_rerun_is_idempotent(settings: Settings) -> None:
    b1 = _accept(settings, "b1", tiny_tables())
    s1 = _pipeline(settings, b1)
    files = {p.name: p.stat().st_mtime_ns for p in snapshot.snapshot_dir(settings, s1).iterdir()}
    assert _pipeline(settings, b1) == s1  # the current batch again: reused, nothing switched
    assert {p.name: p.stat().st_mtime_ns for p in snapshot.snapshot_dir(settings, s1).iterdir()} == files
    assert len([e for e in pointers.read_history(settings) if e["event"] == "switch"]) == 1


def test_an_earlier_batch_moves_back_only_through_data_use(settings: Settings) -> None:
    """Re-validating an earlier good batch used to be silently ignored: now it names the one command that moves."""
    _pipeline(settings, _accept(settings, "b1", tiny_tables()))
    _pipeline(settings, _accept(settings, "b2", with_order(tiny_tables(), "c2", "2024-02-20", 30.0)))
    with pytest.raises(publish.NotPublishableError, match=r"CURRENT stays at b2.*shopflow data use b1"):
        publish.check_publishable(settings, "b1")

    out = publish.use(settings, "b1", reason="b2 has a broken export", by="alice")
    assert out["changed"] and out["previous"] == "b2"
    current = pointers.read_current(settings)
    assert (current.batch_id, current.by, current.reason) == ("b1", "alice", "b2 has a broken export")
    assert _c2_orders_90d(settings) == 0 and _c2_orders_online(settings) == 0  # b1's values, offline and online
    last = pointers.read_history(settings)[-1]
    assert (last["event"], last["batch_id"], last["previous_batch_id"], last["by"]) == ("switch", "b1", "b2", "alice")

    with pytest.raises(publish.NotPublishableError, match="not an accepted batch; accepted: b1, b2"):
        publish.use(settings, "nope", reason="x")
    with pytest.raises(InvalidIdError):
        publish.use(settings, "../b1", reason="x")


def test_data_use_drops_a_pending_batch_so_the_next_run_does_not_undo_it(settings: Settings) -> None:
    _pipeline(settings, _accept(settings, "b1", tiny_tables()))
    _accept(settings, "b2", with_order(tiny_tables(), "c2", "2024-02-20", 30.0))
    out = publish.use(settings, "b1", reason="keep b1")
    assert out["dropped_pending"] == "b2" and not out["changed"]
    assert pointers.read_pending(settings) is None
    with pytest.raises(publish.NotPublishableError, match="shopflow data use b2"):
        publish.check_publishable(settings, "b2")


def test_snapshot_is_built_aside_and_a_dead_build_is_cleaned_up(settings: Settings) -> None:
    _accept(settings, "b1", tiny_tables())
    dead = settings.features_dir / f"{snapshot.BUILDING_PREFIX}b1-00000000-99999"
    dead.mkdir(parents=True)
    (dead / "customer_rfm.parquet").write_text("half")
    sid = snapshot.build_snapshot(settings, "b1")
    assert not dead.exists() and sid == snapshot.snapshot_id("b1")
    manifest = json.loads((snapshot.snapshot_dir(settings, sid) / snapshot.MANIFEST).read_text())
    assert manifest["batch_id"] == "b1" and manifest["rows"]["customer_rfm"] > 0
    assert sorted(p.name for p in settings.features_dir.iterdir() if not p.name.startswith(".")) == [sid]
    assert snapshot.build_snapshot(settings, "b1") == sid  # complete: reused
    with pytest.raises(FileNotFoundError, match="not accepted"):
        snapshot.build_snapshot(settings, "b9")


def test_legacy_and_tampered_pointers(settings: Settings) -> None:
    (settings.batches_dir / "b1").mkdir(parents=True)
    settings.current_pointer.write_text("b1\n")  # written before snapshots existed
    assert current_batch_dir(settings) == settings.batches_dir / "b1"
    assert snapshot.features_root(settings) == settings.features_dir
    with pytest.raises(snapshot.NoFeatureSnapshotError, match="predates feature snapshots"):
        snapshot.current_snapshot(settings)
    for hostile in ({"batch_id": "../x", "snapshot_id": None}, {"batch_id": "b1", "snapshot_id": "../../etc"}):
        settings.current_pointer.write_text(json.dumps(hostile))
        with pytest.raises(InvalidIdError, match="CURRENT"):
            current_batch_dir(settings)
    with pytest.raises(InvalidIdError, match="SHOPFLOW_FEATURE_SNAPSHOT"):
        snapshot.current_snapshot(settings.model_copy(update={"feature_snapshot": "../b1-12345678"}))


def test_fault_point_is_inert_unless_named(monkeypatch) -> None:
    from pipelines.faults import ENV, fault_point

    monkeypatch.setenv(ENV, "somewhere_else")
    fault_point("after_build")  # returns (this test process lives on): only the named point kills
