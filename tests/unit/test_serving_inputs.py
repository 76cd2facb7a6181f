"""Serving inputs travel with the model version: a server reads them from the version's run, not a local batch."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from pipelines import tracking
from pipelines.data.io import read_table
from pipelines.serving import serving_context
from pipelines.settings import Settings
from pipelines.training import SERVING_INPUTS, NoValidatedDataError


def _version(settings: Settings, tmp_path, with_inputs: bool) -> str:
    tracking.configure(settings)
    exp = tracking.experiment_for(settings, "ltv")
    with mlflow.start_run(experiment_id=exp):
        if with_inputs:
            sales = tmp_path / "daily_sales.parquet"
            pd.DataFrame({"date": pd.to_datetime(["2024-05-01"]), "product_id": ["P1"], "units": [3],
                          "price": [9.5]}).to_parquet(sales)
            mlflow.log_artifact(str(sales), artifact_path=SERVING_INPUTS)
        info = mlflow.sklearn.log_model(DummyRegressor().fit([[0]], [1]), name="model",
                                        pip_requirements=["scikit-learn"])
    mv = mlflow.register_model(info.model_uri, "ltv", tags={"shopflow.data_snapshot": "b1"})
    return str(mv.version)


def test_inputs_come_from_the_versions_run_into_an_empty_home(tmp_path):
    trainer = Settings(home=tmp_path / "trainer")
    version = _version(trainer, tmp_path, with_inputs=True)
    server = Settings(home=tmp_path / "server", mlflow_tracking_uri=trainer.tracking_uri)  # nothing local
    ctx = serving_context(server, f"models:/ltv/{version}")
    assert ctx.batch_id == "b1" and ctx.batch_dir.is_relative_to(server.home)
    assert read_table(ctx.batch_dir, "daily_sales")["product_id"].tolist() == ["P1"]
    assert serving_context(server, f"models:/ltv/{version}").batch_dir == ctx.batch_dir  # cached


def test_a_version_without_inputs_falls_back_to_the_current_batch(tmp_path):
    settings = Settings(home=tmp_path / "home")
    version = _version(settings, tmp_path, with_inputs=False)
    with pytest.raises(NoValidatedDataError):  # the old behaviour: CURRENT's batch, of which there is none here
        serving_context(settings, f"models:/ltv/{version}")
