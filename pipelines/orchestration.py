"""Runs ShopFlow's DAGs through Airflow itself (``airflow dags test``) on the embedded metadata DB.

Airflow runs in a child process with an environment derived from :class:`Settings`, so this module (and the
whole library) never imports Airflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import PROJECT_ROOT, Settings

DAGS_FOLDER = PROJECT_ROOT / "dags"


def airflow_bin() -> str:
    """The ``airflow`` executable of this virtualenv."""
    local = Path(sys.executable).with_name("airflow")
    return str(local) if local.exists() else (shutil.which("airflow") or "airflow")


def airflow_env(settings: Settings) -> dict[str, str]:
    """Environment for Airflow processes: our dags/ folder; metadata in SQLite under the ShopFlow home (local) or
    in PostgreSQL (production: ``settings.production.airflow_db_uri``)."""
    home = settings.airflow_home.resolve()
    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "SHOPFLOW_HOME": str(settings.home.resolve()),
        "SHOPFLOW_PROFILE": settings.profile,
    })
    # A user-provided metadata DB wins over the profile's.
    conn = env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", settings.production.airflow_db_uri
                          if settings.profile == "production" else f"sqlite:///{home / 'airflow.db'}")
    scheme, _, rest = conn.partition("://")
    if scheme.split("+")[0] in ("postgresql", "postgres"):
        # Airflow 3 also opens an async engine, by default with asyncpg; psycopg 3 (installed for Feast) does both.
        env.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", f"postgresql+psycopg://{rest}")
    return env


@dataclass
class DagRunResult:
    dag_id: str
    ok: bool
    seconds: float
    log_path: Path


def ensure_airflow_db(settings: Settings, log_dir: Path) -> None:
    """``airflow db migrate`` once per home and metadata DB (idempotent, but skipping saves seconds on reruns)."""
    marker = settings.airflow_home / ".migrated"
    # The marker names the database by a hash (its URI may hold a password): a new database is migrated too.
    database = hashlib.sha256(airflow_env(settings)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].encode()).hexdigest()[:16]
    done = marker.read_text().strip() if marker.exists() else None
    if done == database or (done == "ok" and settings.profile == "local"):  # "ok": a marker from before hashes
        return
    settings.airflow_home.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / "airflow-db-migrate.log", "w") as fh:
        subprocess.run([airflow_bin(), "db", "migrate"], env=airflow_env(settings), stdout=fh,
                       stderr=subprocess.STDOUT, check=True)
    marker.write_text(database + "\n")


def test_dag(settings: Settings, dag_id: str, conf: dict | None, log_dir: Path) -> DagRunResult:
    """Execute one DAG run in-process in Airflow (``airflow dags test``), logging to ``log_dir/<dag_id>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{dag_id}.log"
    cmd = [airflow_bin(), "dags", "test", dag_id]
    if conf:
        cmd += ["--conf", json.dumps(conf)]
    t0 = time.perf_counter()
    with open(log_path, "w") as fh:
        proc = subprocess.run(cmd, env=airflow_env(settings), stdout=fh, stderr=subprocess.STDOUT)
    ok = proc.returncode == 0 and _run_succeeded(log_path)
    return DagRunResult(dag_id, ok, time.perf_counter() - t0, log_path)


def _run_succeeded(log_path: Path) -> bool:
    """``airflow dags test`` may exit 0 on a failed run; the run's final state line is authoritative."""
    text = log_path.read_text(errors="replace")
    return "state=success" in text and "DagRun Finished" in text


def answer_approval(settings: Settings, model: str, version: str, approve: bool, actor: str, reason: str) -> int:
    """Resume a training DAG run parked at its approval task for ``version`` with the same answer (see
    :mod:`shopflow_airflow.hitl`); returns how many tasks were answered (0 when none waits, or no Airflow DB)."""
    if not (settings.airflow_home / ".migrated").exists() and "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in os.environ:
        return 0
    option = "Approve" if approve else "Reject"
    proc = subprocess.run([sys.executable, "-m", "shopflow_airflow.hitl", f"shopflow_train_{model}", str(version),
                           option, actor, reason], env=airflow_env(settings), capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"could not answer Airflow's approval task: {tail[0]}")
    return int(json.loads(proc.stdout.strip().splitlines()[-1])["answered"])
