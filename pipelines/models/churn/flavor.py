"""How a churn model is stored in MLflow: a pyfunc whose artifacts are the fitted candidate (pickled) and the
attribute table it serves with (Parquet, readable by anyone).

Keeping the attributes with the version (rather than in Feast) ties each version to exactly the attribute columns
and encoding it was trained on: a shop's attribute columns are its own and change between imports, while Feast's
feature views are a fixed, reviewed schema. A rollback or A/B arm serves its own attributes.
"""

from __future__ import annotations

import pickle
import tempfile
from dataclasses import replace
from pathlib import Path

from typing import Any

import mlflow
import pandas as pd

ChurnModel = Any  # pipelines.models.churn.model.ChurnModel (which imports this module: no import back)


class ChurnPyfunc(mlflow.pyfunc.PythonModel):
    """``predict`` takes a frame with the model's input columns and returns churn probabilities."""

    def load_context(self, context) -> None:
        with open(context.artifacts["model"], "rb") as fh:
            self.model: ChurnModel = pickle.load(fh)
        self.model.attributes = pd.read_parquet(context.artifacts["attributes"])

    def predict(self, context, model_input: pd.DataFrame, params=None):
        return self.model.predict_proba(model_input)


def log_churn_model(model: ChurnModel, example: pd.DataFrame):
    from mlflow.models import infer_signature

    attributes = model.attributes if model.attributes is not None else pd.DataFrame(
        index=pd.Index([], name="customer_id"))
    example = example[model.columns]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        with open(path / "model.pkl", "wb") as fh:
            pickle.dump(replace(model, attributes=None), fh)
        attributes.to_parquet(path / "attributes.parquet")
        signature = infer_signature(model.inputs(example), model.predict_proba(example))
        return mlflow.pyfunc.log_model(
            name="model", python_model=ChurnPyfunc(), signature=signature,
            artifacts={"model": str(path / "model.pkl"), "attributes": str(path / "attributes.parquet")},
            pip_requirements=["xgboost", "scikit-learn", "pandas", "pyarrow"],
        )


def load_churn_model(uri: str) -> ChurnModel:
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model
