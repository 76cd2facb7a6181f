"""End to end on small data: `shopflow run` drives Airflow -> GX -> Feast -> MLflow for real."""

from __future__ import annotations

import hashlib
import shutil
import json

import mlflow
import pandas as pd
import pytest

from pipelines import tracking
from pipelines.data.io import read_table, write_table
from tests.conftest import shopflow

pytestmark = pytest.mark.integration


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_run_prints_summary_and_registers_champion(pipeline_home, pipeline_settings):
    out = (pipeline_home / "first_run.out").read_text()
    for needle in ("shopflow_data: ok", "shopflow_train_churn: ok", "checks passed", "churn", "champion",
                   "mlflow ui --backend-store-uri", "Data Docs"):
        assert needle in out, needle
    client = tracking.configure(pipeline_settings)
    assert tracking.registry_state(client, "churn") == {"versions": 1, "champion": "1", "challenger": "1"}


def test_run_is_logged_with_lineage_plots_and_metrics(pipeline_settings):
    client = tracking.configure(pipeline_settings)
    mv = client.get_model_version_by_alias("churn", "champion")
    run = client.get_run(mv.run_id)
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    assert tags["shopflow.feature_service"] == "churn_v1"
    assert tags["shopflow.data_snapshot"] == pipeline_settings.current_batch_dir().name
    assert tags["mlflow.source.git.commit"] and tags["shopflow.validation"] == "passed"
    assert tags["shopflow.gate"] == "promoted" and tags["shopflow.gate_reason"] == "no champion yet"
    assert params["feature_service"] == "churn_v1" and "max_depth" in params
    # Judged against the baseline and the oracle, better than chance.
    assert 0.6 < metrics["auc"] <= 1.0
    assert "baseline_logistic_regression_auc" in metrics and "oracle_auc" in metrics
    assert metrics["oracle_auc"] > 0.6
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {"plots/roc.png", "plots/calibration.png", "plots/feature_importance.png"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "lineage")} == {"lineage/validation.json"}
    # The registered artifact is the native XGBoost flavor with a signature.
    model_info = mlflow.models.get_model_info(f"models:/churn/{mv.version}")
    assert "xgboost" in model_info.flavors and model_info.signature is not None


def test_report_json(pipeline_home):
    rows = json.loads(shopflow(pipeline_home, "report", "--json").stdout)
    churn = rows["churn"]
    assert set(churn) == {"metric", "value", "baseline", "oracle", "version", "alias"}
    assert churn["metric"] == "auc" and churn["version"] == "1" and "champion" in churn["alias"]


def test_rerun_same_data_is_idempotent(pipeline_home, pipeline_settings):
    proc = shopflow(pipeline_home, "run")
    assert "shopflow_train_churn: ok" in proc.stdout
    client = tracking.configure(pipeline_settings)
    assert tracking.registry_state(client, "churn") == {"versions": 1, "champion": "1", "challenger": "1"}


def test_forced_retrain_on_same_data_is_not_promoted(pipeline_home, pipeline_settings):
    proc = shopflow(pipeline_home, "train", "churn", "--force")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["version"] == "2"
    assert result["gate"]["promoted"] is False and "does not beat champion v1" in result["gate"]["reason"]
    client = tracking.configure(pipeline_settings)
    assert tracking.registry_state(client, "churn") == {"versions": 2, "champion": "1", "challenger": "2"}
    assert client.get_model_version("churn", "2").tags["shopflow.gate"] == "not promoted"


def test_bad_params_are_a_clear_error(pipeline_home):
    proc = shopflow(pipeline_home, "train", "churn", "--set", "max_deep=3", check=False)
    assert proc.returncode == 2 and "max_deep" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_bad_batch_is_quarantined_and_nothing_downstream_changes(pipeline_home, pipeline_settings, tmp_path):
    s = pipeline_settings
    good = s.current_batch_dir()
    features_before = {p.name: _digest(p) for p in s.features_dir.glob("*.parquet")}
    client = tracking.configure(s)
    registry_before = tracking.registry_state(client, "churn")

    # A new batch in which some orders have negative amounts and unknown customers.
    bad = tmp_path / "bad"
    for table in ("customers", "products", "events", "daily_sales"):
        write_table(read_table(good, table), bad, table)
    shutil.copytree(good / "images", bad / "images")
    orders = read_table(good, "orders")
    orders.loc[orders.index[:5], "amount"] = -10.0
    orders.loc[orders.index[5:8], "customer_id"] = "C_UNKNOWN"
    write_table(orders, bad, "orders")
    imported = shopflow(pipeline_home, "data", "import", str(bad))
    assert "imported batch" in imported.stdout

    proc = shopflow(pipeline_home, "run", "--no-generate", check=False)
    assert proc.returncode == 1
    assert "quarantined" in proc.stdout and "orders" in proc.stdout and "amount" in proc.stdout
    assert "shopflow_train_churn" not in proc.stdout  # nothing downstream ran
    quarantined = [p for p in s.quarantine_dir.iterdir() if p.is_dir()]
    assert len(quarantined) == 1 and (quarantined[0] / "summary.md").exists()
    assert s.current_batch_dir() == good
    assert {p.name: _digest(p) for p in s.features_dir.glob("*.parquet")} == features_before
    assert tracking.registry_state(client, "churn") == registry_before
