"""What ``shopflow tune forecasting`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the forecasting family: model capacity and learning, never the data split."""
    return {
        "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-3, 1e-2, log=True),
        "steps": trial.suggest_int("steps", 200, 1200, log=True),
    }
