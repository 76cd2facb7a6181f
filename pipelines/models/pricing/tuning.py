"""What ``shopflow tune pricing`` searches (Optuna), scored on the validation split only (see ``pipelines.tuning``)."""

from __future__ import annotations

from typing import Any


def search_space(trial: Any) -> dict[str, Any]:
    """The tuned parameters of the pricing family: model capacity and learning, never the data split."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 3e-3, log=True),
        "gamma": trial.suggest_float("gamma", 0.8, 0.97),
        "hidden": trial.suggest_categorical("hidden", [32, 64, 128]),
        "elasticity_prior": trial.suggest_float("elasticity_prior", 0.5, 8.0, log=True),
    }
