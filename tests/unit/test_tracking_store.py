"""Processes that open a new local home's MLflow store at the same moment all get a working store (CI once failed
with ``table _alembic_tmp_experiments already exists``: a run's task and a CLI command migrated the new SQLite
database at once)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import sys
from pathlib import Path
from pipelines import tracking
from pipelines.settings import Settings
client = tracking.configure(Settings(home=Path(sys.argv[1])))
client.search_model_versions("name='churn'")
print("ok")
"""


def test_concurrent_first_use_of_a_sqlite_store(tmp_path) -> None:
    for attempt in range(2):  # two fresh homes: the race window is the few seconds of the first migration
        home = tmp_path / f"home{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(home)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        results = [p.communicate(timeout=600) for p in procs]
        for p, (out, err) in zip(procs, results):
            assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
