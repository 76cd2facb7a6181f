"""What ``shopflow tune vision`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the vision family: model capacity and learning, never the data split."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.4, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-5, 2e-3, log=True),
        "label_smoothing": trial.suggest_float("label_smoothing", 0.0, 0.2),
        "dropout": trial.suggest_float("dropout", 0.0, 0.4),
    }
