"""What ``shopflow tune ltv`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the ltv family: model capacity and learning, never the data split."""
    return {
        "n_estimators": trial.suggest_int("n_estimators", 50, 600, log=True),
        "max_depth": trial.suggest_int("max_depth", 2, 6),
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.2, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 1.0, 30.0, log=True),
        "tweedie_variance_power": trial.suggest_float("tweedie_variance_power", 1.1, 1.9),
    }
