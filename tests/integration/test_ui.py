"""`shopflow ui` starts the Airflow UI (api-server, scheduler, dag-processor, triggerer) and the MLflow UI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from pipelines.registry import load_registry
from tests.integration.test_serving import _free_port

pytestmark = pytest.mark.integration


def test_ui_serves_airflow_and_mlflow(pipeline_home):
    af, ml = _free_port(), _free_port()
    env = dict(os.environ, SHOPFLOW_HOME=str(pipeline_home))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "shopflow"), "ui", "--airflow-port", str(af),
                             "--mlflow-port", str(ml)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        deadline, health = time.time() + 180, {}
        while time.time() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{af}/api/v2/monitor/health", timeout=3).json()
                if (all(health.get(c, {}).get("status") == "healthy" for c in ("scheduler", "dag_processor"))
                        and httpx.get(f"http://127.0.0.1:{ml}/health", timeout=3).status_code == 200):
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(2)
        assert proc.poll() is None, proc.stdout.read()
        assert health.get("metadatabase", {}).get("status") == "healthy", health
        # The DAG processor parses our dags/ folder into the UI's database.
        expected = {"shopflow_data"} | {f"shopflow_train_{m}" for m in load_registry()}
        dags: set[str] = set()
        while time.time() < deadline and not expected <= dags:
            dags = {d["dag_id"] for d in httpx.get(f"http://127.0.0.1:{af}/api/v2/dags", timeout=5).json()["dags"]}
            time.sleep(2)
        assert expected <= dags
        models = httpx.get(f"http://127.0.0.1:{ml}/api/2.0/mlflow/registered-models/search", timeout=10).json()
        assert "churn" in {m["name"] for m in models["registered_models"]}
    finally:
        # Every process `shopflow ui` started (Airflow's own helpers such as serve-logs and gunicorn workers
        # included) is gone within 10 s of SIGTERM.
        tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(tree, timeout=10)
        if alive:
            for p in alive:
                p.kill()
        assert not alive, f"still running 10 s after SIGTERM: {[(p.pid, p.name()) for p in alive]}"
        assert len(tree) >= 6, tree  # shopflow plus its five programs at least
    # No orphan left listening: both ports are free again.
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{ml}/health", timeout=1)
            time.sleep(1)
        except httpx.HTTPError:
            break
    else:
        pytest.fail("MLflow UI still running after `shopflow ui` stopped")


def test_ui_bad_ports_are_one_line_errors(tmp_path):
    env = dict(os.environ, SHOPFLOW_HOME=str(tmp_path / "home"))
    for args, message in ((["--airflow-port", "99999999"], "--airflow-port must be between 1 and 65535"),
                          (["--mlflow-port", "0"], "--mlflow-port must be between 1 and 65535"),
                          (["--airflow-port", "8123", "--mlflow-port", "8123"], "must differ")):
        r = subprocess.run([str(Path(sys.executable).parent / "shopflow"), "ui", *args], env=env,
                           capture_output=True, text=True, timeout=60)
        out = (r.stdout + r.stderr).strip()
        assert r.returncode == 2 and message in out and len(out.splitlines()) == 1, out
