"""What ``shopflow tune churn`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the churn family: model capacity and learning, never the data split."""
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20.0, log=True),
    }
