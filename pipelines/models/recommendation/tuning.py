"""What ``shopflow tune recommendation`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the recommendation family: model capacity and learning, never the data split."""
    return {
        "weight_cart": trial.suggest_float("weight_cart", 1.0, 8.0),
        "weight_purchase": trial.suggest_float("weight_purchase", 1.0, 12.0),
        "half_life_days": trial.suggest_categorical("half_life_days", [0.0, 30.0, 90.0, 180.0]),
        "dim": trial.suggest_categorical("dim", [16, 32, 64]),
        "lr": trial.suggest_float("lr", 0.01, 0.2, log=True),
    }
