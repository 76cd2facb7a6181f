"""Classical per-series baselines: seasonal naive and additive Holt-Winters (damped trend), vectorised over series.

statsmodels is not a dependency of the project, so Holt-Winters is a small NumPy implementation: the smoothing
constants are picked per series from a grid by one-step-ahead squared error on the training part only, then the
filter runs over the whole history; its state at each backtest origin depends only on data before it.
"""

from __future__ import annotations

import itertools

import numpy as np

ALPHAS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5)
BETAS = (0.0, 0.02, 0.1)
GAMMAS = (0.02, 0.05, 0.15, 0.3)
PHI = 0.9
"""Trend damping: keeps multi-week forecasts from running away on noisy count data."""


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


def _filter(y: np.ndarray, season: int, alpha: np.ndarray, beta: np.ndarray, gamma: np.ndarray,
            stop: int, record: tuple[int, ...] = ()) -> tuple[np.ndarray, dict[int, tuple]]:
    """Run additive damped Holt-Winters over ``y[..., :stop]`` (any leading batch shape).

    Returns:
        The one-step-ahead SSE from the second season on, and the ``(level, trend, seasonals, t)`` state just
        before each index in ``record``.
    """
    level = y[..., :season].mean(axis=-1)
    trend = np.zeros_like(level)
    seas = y[..., :season] - level[..., None]
    sse = np.zeros_like(level)
    states: dict[int, tuple] = {}
    for t in range(season, stop):
        if t in record:
            states[t] = (level.copy(), trend.copy(), seas.copy(), t)
        s_t = seas[..., t % season]
        err = y[..., t] - (level + PHI * trend + s_t)
        if t >= 2 * season:
            sse += err**2
        new_level = alpha * (y[..., t] - s_t) + (1 - alpha) * (level + PHI * trend)
        trend = beta * (new_level - level) + (1 - beta) * PHI * trend
        seas[..., t % season] = gamma * (y[..., t] - new_level) + (1 - gamma) * s_t
        level = new_level
    if stop in record:
        states[stop] = (level.copy(), trend.copy(), seas.copy(), stop)
    return sse, states


def holt_winters(units: np.ndarray, origins: list[int], horizon: int, season: int,
                 fit_end: int) -> np.ndarray:
    """Additive Holt-Winters forecasts from several origins.

    Args:
        units: History, shape ``(series, periods)``.
        origins: First forecast index of each backtest window (sorted; each >= ``fit_end``).
        horizon: Steps to forecast from each origin.
        season: Seasonal period; 1 means no seasonal component (level + damped trend only).
        fit_end: Smoothing constants are chosen on ``units[:, :fit_end]`` only.

    Returns:
        Non-negative forecasts of shape ``(origins, series, horizon)``.
    """
    y = units.astype(np.float64)
    m = max(season, 1)
    if fit_end < 2 * m + 1:
        raise ValueError(f"Holt-Winters needs more than {2 * m} periods of training history, got {fit_end}")
    grid = np.array(list(itertools.product(ALPHAS, BETAS, GAMMAS if m > 1 else (0.0,))))
    a, b, g = (grid[:, k][:, None] for k in range(3))
    sse, _ = _filter(np.broadcast_to(y[None, :, :fit_end], (len(grid), *y[:, :fit_end].shape)).copy(), m,
                     a, b, g, fit_end)
    best = np.argmin(sse, axis=0)  # one smoothing triple per series
    alpha, beta, gamma = grid[best, 0], grid[best, 1], grid[best, 2]
    _, states = _filter(y, m, alpha, beta, gamma, max(origins), record=tuple(origins))
    damp = np.cumsum(PHI ** np.arange(1, horizon + 1))
    out = np.empty((len(origins), y.shape[0], horizon))
    for k, origin in enumerate(origins):
        level, trend, seas, t = states[origin]
        season_part = seas[:, (t + np.arange(horizon)) % m]
        out[k] = level[:, None] + trend[:, None] * damp[None, :] + season_part
    return np.clip(out, 0.0, None)
