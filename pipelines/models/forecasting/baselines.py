"""The classical baselines of the field: seasonal naive, additive Holt-Winters and exponential smoothing with model
selection (:mod:`pipelines.models.forecasting.candidates`), scored on the same backtests as the network."""

from __future__ import annotations

import numpy as np

from pipelines.models.forecasting.candidates import STATISTICAL, point_forecasts, seasonal_naive

__all__ = ["baseline_forecasts", "holt_winters", "seasonal_naive"]


def holt_winters(units: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Additive damped Holt-Winters forecasts ``(origins, series, horizon)``, refitted at each origin on the
    history before it."""
    return point_forecasts("holt_winters", units, origins, horizon, season)


def baseline_forecasts(units: np.ndarray, origins: list[int], horizon: int, season: int) -> dict[str, np.ndarray]:
    """Point forecasts ``(origins, products, horizon)`` of each baseline from each origin."""
    return {name: point_forecasts(name, units, origins, horizon, season) for name in STATISTICAL}
