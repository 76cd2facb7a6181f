"""Training killed at every step boundary (kill -9 via SHOPFLOW_FAULT_AT, and SIGTERM) leaves the registry
consistent, and a plain rerun heals: no RUNNING run, no incomplete version, aliases on complete versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, SMALL_CUSTOMERS, shopflow

pytestmark = pytest.mark.integration

MODEL = "churn"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("faults") / "home"
    shopflow(home, "run", "--model", MODEL)
    return home


def _client(home: Path):
    import mlflow

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _check_consistent(home: Path) -> dict:
    """No RUNNING run, every version completed, every alias on an existing complete version."""
    from pipelines.tracking import COMPLETE_TAG

    client = _client(home)
    exp = client.get_experiment_by_name(f"shopflow-{MODEL}")
    running = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert running == [], [r.info.run_id for r in running]
    versions = {str(mv.version): mv for mv in client.search_model_versions(f"name = '{MODEL}'")}
    assert all(COMPLETE_TAG in mv.tags for mv in versions.values()), {v: mv.tags for v, mv in versions.items()}
    aliases = {k: str(v) for k, v in client.get_registered_model(MODEL).aliases.items()}
    assert set(aliases.values()) <= set(versions), (aliases, sorted(versions))
    assert "challenger" in aliases  # champion too when the gate let a version through (not needed here)
    return {"versions": sorted(versions, key=int), "aliases": aliases}


def _train(home: Path, seed: int, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {"SHOPFLOW_FAULT_AT": fault} if fault else {}
    return shopflow(home, "train", MODEL, "--set", f"seed={seed}", check=False, **env)


@pytest.mark.parametrize("seed, point", [(101, "train:fit"), (103, "register:created"), (104, "register:aliased"),
                                         (105, "gate:decided")])
def test_kill_at_each_boundary_then_a_plain_rerun_heals(home: Path, seed: int, point: str) -> None:
    before = _client(home).search_model_versions(f"name = '{MODEL}'")
    killed = _train(home, seed, fault=point)
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr[-2000:]

    healed = _train(home, seed)  # the same command again, without --force
    assert healed.returncode == 0, healed.stdout[-3000:] + healed.stderr[-3000:]
    out = json.loads(healed.stdout[healed.stdout.index("{"):])
    state = _check_consistent(home)
    assert out["version"] in state["versions"]
    # Killed before registration completed: a new version; killed in the gate: the completed version is reused.
    assert out["reused"] is (point == "gate:decided")
    assert len(state["versions"]) == len(before) + 1

    if point == "gate:decided":
        again = _train(home, seed)
        assert json.loads(again.stdout[again.stdout.index("{"):])["reused"] is True  # idempotent once healed


def test_sigterm_ends_the_mlflow_run_killed(home: Path) -> None:
    client = _client(home)
    exp = client.get_experiment_by_name(f"shopflow-{MODEL}")
    env = dict(os.environ, SHOPFLOW_HOME=str(home), SHOPFLOW_CUSTOMERS=str(SMALL_CUSTOMERS))
    proc = subprocess.Popen([str(BIN / "shopflow"), "train", MODEL, "--set", "seed=201"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        run = None
        while run is None and time.monotonic() < deadline and proc.poll() is None:
            runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
            run = runs[0] if runs else None
            time.sleep(0.05)
        assert run is not None, "the training run never showed up as RUNNING"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert client.get_run(run.info.run_id).info.status == "KILLED"
    assert not [mv for mv in client.search_model_versions(f"name = '{MODEL}'") if mv.run_id == run.info.run_id]
