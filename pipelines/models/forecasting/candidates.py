"""The statistical candidates: seasonal naive and exponential smoothing, as point forecasts from any origin.

Each is a procedure, not a fitted state: a forecast from origin ``t`` is fitted on ``units[:, :t]`` (the whole
history up to it), so the same registered candidate forecasts a backtest window or the periods after the data's
end without reading anything later. The network is the family's own candidate (``model``); these double as its
baselines, and any of them is registered and served when it wins the selection on the validation backtest.
"""

from __future__ import annotations

import numpy as np

from pipelines.models.forecasting.smoothing import smooth_forecast

STATISTICAL = ("seasonal_naive", "ets")
"""The statistical candidates and baselines, in the order :func:`pipelines.promotion.select_candidate` breaks ties:
the simplest first.

``ets``: Holt-Winters with a damped (or linear) trend and, per series, the additive or the multiplicative season,
whichever the likelihood prefers (exponential smoothing with model selection). Plain additive Holt-Winters
(``holt_winters``, still a valid method) is no separate candidate: it is one of the models ``ets`` chooses from, and
a near-clone baseline would make the gate refuse a winning ``ets`` for beating its own special case by nothing."""

_SEASONALITY = {"holt_winters": "additive", "ets": "auto"}


def seasonal_naive(units: np.ndarray, origin: int, horizon: int, season: int) -> np.ndarray:
    """Repeat the last observed season: ``y[origin + h] = y[origin - season + h % season]``.

    Args:
        units: History, shape ``(series, periods)``.
        origin: Index of the first forecast period (only ``units[:, :origin]`` is used).
        horizon: Steps to forecast.
        season: Seasonal period (1 gives the naive last-value forecast).

    Returns:
        Forecasts of shape ``(series, horizon)``.
    """
    if origin < season:
        raise ValueError(f"seasonal naive needs {season} periods before the origin, got {origin}")
    steps = np.arange(horizon) % season
    return units[:, origin - season + steps].astype(np.float64)


def point_forecasts(method: str, units: np.ndarray, origins: list[int], horizon: int, season: int) -> np.ndarray:
    """Point forecasts ``(origins, series, horizon)`` of a statistical candidate.

    Raises:
        ValueError: For an unknown method name.
    """
    if method == "seasonal_naive":
        return np.stack([seasonal_naive(units, o, horizon, season if o >= season else 1) for o in origins])
    if method in _SEASONALITY:
        return np.stack([smooth_forecast(units, o, horizon, season, _SEASONALITY[method]) for o in origins])
    raise ValueError(f"unknown forecasting candidate {method!r}; known: {', '.join(STATISTICAL)}, network")
