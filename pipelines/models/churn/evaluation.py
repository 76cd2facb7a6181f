"""Holdout evaluation of the registered churn candidate against the baseline and the oracle."""

from __future__ import annotations

import logging

from pipelines.models.churn.data import ChurnData
from pipelines.models.churn.model import ChurnModel, candidate, holdout, metric
from pipelines.models.churn.params import ChurnParams
from pipelines.spec import Evaluation

log = logging.getLogger(__name__)

BASELINES = ("logistic_regression",)
"""Baselines scored on the holdout (and candidates in :func:`pipelines.models.churn.model.fit`)."""


def evaluate(model: ChurnModel, data: ChurnData, params: ChurnParams) -> Evaluation:
    """AUC (primary), PR-AUC, log loss and Brier score of the registered candidate; the baseline's AUC and per-customer
    results (refit on the whole training part); the oracle's AUC; the labelled-customer counts; figures."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss

    from pipelines.models.churn import plots

    units = {name: holdout(candidate(name, data, params, data.train, trees=model.trees), data) for name in BASELINES}
    mine = holdout(model, data)
    y, p = mine["y"].to_numpy(), mine["p"].to_numpy()
    metrics = {
        "auc": metric(mine), "pr_auc": average_precision_score(y, p),
        "logloss": log_loss(y, p, labels=[0, 1]), "brier": brier_score_loss(y, p),
        "holdout_rows": float(len(y)), "train_rows": float(len(data.train)), "holdout_churn_rate": float(y.mean()),
        "attribute_columns": float(len(data.numeric) + len(data.categorical)),
        **data.counts,
    }
    if data.counts.get("labelled_left_out"):
        log.warning("churn: %d labelled customer(s) left out of training and holdout",
                    data.counts["labelled_left_out"])
    oracle_auc = metric(mine.assign(p=data.oracle.to_numpy())) if data.oracle is not None else None

    name = "xgboost" if model.candidate == "model" else model.candidate
    curves = {f"{name} (registered)": p, **{f"{k} baseline": f["p"].to_numpy() for k, f in units.items()}}
    if data.oracle is not None:
        curves["oracle"] = data.oracle.to_numpy()
    figures = {"roc.png": plots.roc(y, curves), "calibration.png": plots.calibration(y, curves)}
    if model.candidate == "model":
        figures["feature_importance.png"] = plots.importance(model)
    if model.learning:
        figures["learning_curve.png"] = plots.learning_curve(model.learning)
    return Evaluation(
        metrics=metrics,
        baselines={k: metric(f) for k, f in units.items()},
        oracle=oracle_auc,
        figures=figures,
        extra_params={"holdout_cutoff": str(data.holdout_cutoff.date()) if data.holdout_cutoff is not None else "none",
                      "features": ",".join(data.features), "attributes": ",".join([*data.numeric, *data.categorical]),
                      "trees": model.trees},
        units=units,
        candidate=model.candidate,
        selection=dict(model.selection),
    )
