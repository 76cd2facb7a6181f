"""`shopflow kfp run MODEL --local`: the KFP pipelines run for real with kfp.local (validate -> features -> train ->
gate), with the metrics and the registered version as KFP outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import shopflow

pytestmark = pytest.mark.integration


def test_kfp_local_run_end_to_end(tmp_path: Path) -> None:
    import mlflow

    home = tmp_path / "home"
    shopflow(home, "data", "generate")
    proc = shopflow(home, "kfp", "run", "churn", "--local")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["batch_id"] == json.loads((home / "data" / "CURRENT").read_text())["batch_id"]

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name = 'churn'")
    assert [str(v.version) for v in versions] == ["1"]
    gate_tag = versions[0].tags["shopflow.gate"]
    assert gate_tag in ("promoted", "not promoted")
    assert out["champion"] == ("1" if gate_tag == "promoted" else None)

    # The components' outputs, as KFP wrote them: the version and the metrics artifacts.
    # kfp.local names a run "<pipeline>-YYYY-mm-dd-HH-MM-SS-ffffff"; strip that whole stamp.
    runs = {re.sub(r"-\d{4}(-\d{2}){5}-\d{6}$", "", p.name): p for p in (home / "kfp").iterdir()}
    assert set(runs) == {"shopflow-data", "shopflow-train-churn"}
    executor = json.loads((runs["shopflow-train-churn"] / "train" / "executor_output.json").read_text())
    assert executor["parameterValues"]["version"] == "1"
    assert json.loads(executor["parameterValues"]["summary_json"])["data_snapshot"] == out["batch_id"]
    metrics = executor["artifacts"]["metrics"]["artifacts"][0]["metadata"]
    assert 0.5 < metrics["auc"] <= 1 and metrics["candidate"]
    gate = json.loads((runs["shopflow-train-churn"] / "gate" / "executor_output.json").read_text())
    assert gate["parameterValues"]["promoted"] is (gate_tag == "promoted")
