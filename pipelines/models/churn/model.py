"""The churn model and its candidates: XGBoost (with a monotone recency constraint) and a logistic regression, both
on the Feast features and the customer attributes; the one that scores best on the validation split is refit on
the whole training part and registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.models.churn.data import FIT, VALIDATE, ChurnData
from pipelines.models.churn.params import ChurnParams

CANDIDATES = ("logistic_regression", "model")
"""Selection order: a tie keeps the simpler logistic regression."""


@dataclass
class ChurnModel:
    """A fitted candidate with what it needs to score a customer: its input columns and, for serving, the
    attributes of every customer it was trained with (the registry keeps them with the version)."""

    candidate: str
    estimator: Any
    """scikit-learn ``Pipeline``: attribute encoding (:func:`pipelines.data.attributes.preprocessor`) + classifier."""
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    attributes: pd.DataFrame | None = None
    selection: dict[str, float] = field(default_factory=dict)
    """Validation AUC of every candidate."""
    trees: int | None = None
    """Boosting rounds chosen by early stopping on the validation split (XGBoost)."""
    learning: dict | None = None
    """AUC per boosting round on the fit and validation parts (XGBoost's selection fit), for the learning curve."""

    @property
    def columns(self) -> list[str]:
        return [*self.features, *self.numeric, *self.categorical]

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        from pipelines.data.attributes import model_input

        return model_input(frame, [*self.features, *self.numeric], self.categorical)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability of each row of ``frame`` (which holds the model's :attr:`columns`)."""
        return self.estimator.predict_proba(self.inputs(frame))[:, 1]


def _xgb(data: ChurnData, params: ChurnParams, rows: pd.DataFrame, val: pd.DataFrame | None, trees: int):
    import xgboost as xgb
    from sklearn.pipeline import Pipeline

    from pipelines.data.attributes import model_input, preprocessor
    from pipelines.utils import pick_device

    numeric = [*data.features, *data.numeric]
    prep = preprocessor(numeric, data.categorical, scale=False)
    x = prep.fit_transform(model_input(rows, numeric, data.categorical))
    # Domain prior: all else equal, a longer time since the last order never lowers churn risk. It also makes the
    # model's behaviour explainable to shop teams and testable (tests/model/test_churn.py). Numerics come first.
    constraints = [0] * x.shape[1]
    if "recency_days" in data.features:
        constraints[data.features.index("recency_days")] = 1
    clf = xgb.XGBClassifier(
        monotone_constraints=tuple(constraints), n_estimators=trees, max_depth=params.max_depth,
        learning_rate=params.learning_rate, subsample=params.subsample, colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight, random_state=params.seed, device=pick_device(),
        # One thread: churn tables are small, and on a busy machine OpenMP threads spin-waiting for each other made a
        # 240-tree fit 31x slower with two threads than with one (13.6 s vs 428 s at load 24 on 2 cores).
        n_jobs=1,
        eval_metric="auc", tree_method="hist",
        early_stopping_rounds=params.early_stopping_rounds if val is not None else None,
    )
    evals = [(x, rows["churned"])]
    if val is not None:
        evals.append((prep.transform(model_input(val, numeric, data.categorical)), val["churned"]))
    clf.fit(x, rows["churned"], eval_set=evals, verbose=False)
    return Pipeline([("encode", prep), ("classify", clf)])


def _logistic(data: ChurnData, params: ChurnParams, rows: pd.DataFrame):
    """Logistic regression on all columns: one-hot categoricals, median-imputed and standardised numerics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from pipelines.data.attributes import model_input, preprocessor

    numeric = [*data.features, *data.numeric]
    pipe = Pipeline([("encode", preprocessor(numeric, data.categorical, scale=True)),
                     ("classify", LogisticRegression(max_iter=5000, random_state=params.seed))])
    return pipe.fit(model_input(rows, numeric, data.categorical), rows["churned"])


def candidate(name: str, data: ChurnData, params: ChurnParams, rows: pd.DataFrame,
              val: pd.DataFrame | None = None, trees: int | None = None) -> ChurnModel:
    """One candidate fitted on ``rows`` (``val``: early stopping of XGBoost; ``trees``: its fixed size)."""
    if name == "model":
        estimator = _xgb(data, params, rows, val, trees or params.n_estimators)
    elif name == "logistic_regression":
        estimator = _logistic(data, params, rows)
    else:
        raise ValueError(f"unknown churn candidate {name!r}; one of {', '.join(CANDIDATES)}")
    return ChurnModel(name, estimator, list(data.features), list(data.numeric), list(data.categorical))


def auc(y, p) -> float:
    """ROC AUC, NaN when ``y`` holds a single class."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def fit(data: ChurnData, params: ChurnParams) -> ChurnModel:
    """Pick the candidate on the validation split, then refit it on the whole training part.

    XGBoost's number of trees is chosen by early stopping on the same validation split.
    """
    from pipelines.promotion import select_candidate

    fit_rows, val_rows = data.train[data.split == FIT], data.train[data.split == VALIDATE]
    fitted = {name: candidate(name, data, params, fit_rows, val=val_rows) for name in CANDIDATES}
    scores = {name: auc(val_rows["churned"], m.predict_proba(val_rows)) for name, m in fitted.items()}
    booster = fitted["model"].estimator.named_steps["classify"]
    trees = int(booster.best_iteration) + 1
    winner = select_candidate(scores, higher_is_better=True)
    model = candidate(winner, data, params, data.train, trees=trees)
    model.attributes, model.selection = data.attributes, scores
    model.trees, model.learning = trees, booster.evals_result()
    return model


def predict_proba(model: ChurnModel, frame: pd.DataFrame) -> np.ndarray:
    """Churn probability for rows of ``frame``."""
    return model.predict_proba(frame)


def holdout(model: ChurnModel, data: ChurnData) -> pd.DataFrame:
    """The gate's per-customer holdout frame: label ``y`` and probability ``p``, indexed by customer id."""
    return pd.DataFrame({"y": data.holdout["churned"].to_numpy(dtype=int), "p": model.predict_proba(data.holdout)},
                        index=pd.Index(data.holdout["customer_id"].astype(str).to_numpy(), name="customer_id"))


def contributions(model: ChurnModel, data: ChurnData):
    """Each holdout customer's contributions to the log-odds, per input column (``ModelSpec.contributions``)."""
    from pipelines.explain import grouped_contributions

    inputs = model.inputs(data.holdout)
    return grouped_contributions(model.estimator, inputs), inputs


def metric(frame: pd.DataFrame) -> float:
    """AUC of a per-customer frame (or any resample of it); NaN with a single class."""
    return auc(frame["y"], frame["p"])


def score(model: ChurnModel, data: ChurnData) -> float:
    return metric(holdout(model, data))


def log_model(model: ChurnModel, data: ChurnData):
    from pipelines.models.churn.flavor import log_churn_model

    return log_churn_model(model, data.holdout.head(5))


def load_model(uri: str) -> ChurnModel:
    from pipelines.models.churn.flavor import load_churn_model

    return load_churn_model(uri)
