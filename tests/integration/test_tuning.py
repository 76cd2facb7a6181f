"""shopflow tune (issue 11, item 3): Optuna on the validation split, the study in MLflow, the result stored and
shown, and used by the next training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import shopflow

pytestmark = pytest.mark.integration


def test_tune_stores_the_study_in_mlflow_and_the_best_params_on_the_model(pipeline_home: Path,
                                                                          tmp_path: Path) -> None:
    from pipelines import tracking
    from pipelines.settings import Settings

    home = tmp_path / "home"
    # A copy, so the shared end-to-end home keeps its untuned parameters (and its idempotent reruns).
    shutil.copytree(pipeline_home, home, ignore=shutil.ignore_patterns("serve-*.log"))
    out = json.loads(shopflow(home, "tune", "churn", "--trials", "3", "--set", "n_estimators=60", "--json").stdout)
    assert out["trials"] == 3 and out["completed"] >= 1 and out["metric"] == "auc"
    assert 0.5 <= out["default_validation"] <= 1 and 0.5 <= out["best_validation"] <= 1
    # The fixed override is kept; the defaults stay unless a trial beat them on validation.
    assert out["stored_params"]["n_estimators"] == 60
    if not out["improved"]:
        assert out["stored_params"] == {"n_estimators": 60}
    if out["improved"]:
        assert out["best_validation"] > out["default_validation"]
        assert set(out["best_params"]) <= set(out["stored_params"])

    client = tracking.configure(Settings(home=home))
    study = client.get_run(out["run_id"])
    assert study.info.status == "FINISHED" and study.data.metrics["best_validation"] == out["best_validation"]
    trials = client.search_runs([out["experiment_id"]], f"tags.mlflow.parentRunId = '{out['run_id']}'")
    assert len(trials) == 3 and all(t.info.status == "FINISHED" for t in trials)
    assert {"max_depth", "learning_rate"} <= set(trials[0].data.params)
    assert tracking.tuned_params(client, "churn") == json.loads(json.dumps(out["stored_params"]))
    report = json.loads(shopflow(home, "report", "--json").stdout)
    assert report["churn"]["tuned_params"] == tracking.tuned_params(client, "churn")
