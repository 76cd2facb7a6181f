"""Exponential smoothing (additive Holt-Winters with a damped trend), vectorised over series and parameter grids.

statsmodels is not a dependency of the product, so the filter is a small NumPy implementation: the smoothing
constants of each series are chosen from a grid by their likelihood (one-step-ahead errors) on the history before each
forecast origin, so a forecast from origin ``t`` reads ``y[:, :t]`` only (the whole history up to it, nothing
after it). The seasonal component is additive or multiplicative (seasonal swings that grow with the level, as in
most retail series); ``auto`` picks per series the better fit, as ETS model selection does.
"""

from __future__ import annotations

import numpy as np

ALPHAS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9)
BETAS = (0.0, 0.02, 0.05, 0.15)
GAMMAS = (0.01, 0.05, 0.15, 0.3)
PHIS = (0.8, 0.9, 0.95, 0.98, 1.0)
"""Trend damping (the range ETS estimates it in) and 1.0, an undamped linear trend."""
MIN_FIT = 8
"""Fewest periods of history a forecast origin needs (shorter seasonal histories are fitted without season)."""


GRIDS = (ALPHAS, BETAS, GAMMAS, PHIS)
START = (0.2, 0.02, 0.05, 0.98)
SWEEPS = 2
"""Coordinate search: each constant in turn over its grid, the others held at each series' current best. Two
sweeps reach the full grid's optimum (or within noise of it) at a tenth of its cost, which matters for daily
shops with hundreds of products."""


def _filter(y: np.ndarray, season: int, par: np.ndarray, stop: int,
            multiplicative: bool = False) -> tuple[np.ndarray, tuple]:
    """Holt-Winters (damped additive trend, additive or multiplicative season) over ``y[..., :stop]`` for
    parameters ``par[..., 4]`` (alpha, beta, gamma, phi) broadcast against the series.

    Returns:
        The fit criterion over the one-step-ahead errors after the first two seasons (which initialise the state)
        and the final ``(level, trend, seasonals)``. The criterion is ETS's -2 log-likelihood up to a constant:
        ``n log(mean e^2)`` with additive errors (additive season), ``n log(mean (e / fit)^2) + 2 sum log fit``
        with multiplicative (relative) errors (multiplicative season), so the two models compare like by AIC
        (they have the same number of constants).
    """
    alpha, beta, gamma, phi = (par[..., k] for k in range(4))
    m = season
    first = y[..., :m].mean(axis=-1)
    second = y[..., m:2 * m].mean(axis=-1) if y.shape[-1] >= 2 * m else first
    zero = 0 * alpha
    level = first + zero
    trend = (second - first) / m + zero
    if multiplicative:
        seas = y[..., :m] / np.where(first > 0, first, 1.0)[..., None] + zero[..., None]
    else:
        seas = y[..., :m] - first[..., None] + zero[..., None]
    sse = np.zeros_like(level)
    logs = np.zeros_like(level)
    warmup = min(2 * m, max(stop - 1, m))
    for t in range(m, stop):
        s_t = seas[..., t % m]
        base = level + phi * trend
        fitted = base * s_t if multiplicative else base + s_t
        if t >= warmup:
            if multiplicative:
                fit = np.maximum(fitted, 1e-6)
                sse += ((y[..., t] - fitted) / fit) ** 2
                logs += np.log(fit)
            else:
                sse += (y[..., t] - fitted) ** 2
        if multiplicative:
            new_level = alpha * y[..., t] / np.maximum(s_t, 1e-6) + (1 - alpha) * base
            seas[..., t % m] = gamma * y[..., t] / np.maximum(new_level, 1e-6) + (1 - gamma) * s_t
        else:
            new_level = alpha * (y[..., t] - s_t) + (1 - alpha) * base
            seas[..., t % m] = gamma * (y[..., t] - new_level) + (1 - gamma) * s_t
        trend = beta * (new_level - level) + (1 - beta) * phi * trend
        level = new_level
    count = max(stop - warmup, 1)
    crit = count * np.log(np.maximum(sse / count, 1e-300)) + 2 * logs
    return crit, (level, trend, seas)


def min_history(season: int) -> int:
    """Periods of history a seasonal fit needs (two full seasons and one to score)."""
    return 2 * season + 1


def _fit_forecast(y: np.ndarray, season: int, horizon: int, multiplicative: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-series constants by the fit criterion (coordinate search), then forecasts; returns ``(forecasts, sse)``."""
    origin, n = y.shape[1], y.shape[0]
    par = np.tile(np.array(START), (n, 1))
    if season == 1:
        par[:, 2] = 0.0
    sse = None
    for _ in range(SWEEPS):
        for k, grid in enumerate(GRIDS):
            if k == 2 and season == 1:
                continue
            trial = np.broadcast_to(par[None], (len(grid), n, 4)).copy()
            trial[..., k] = np.asarray(grid)[:, None]
            errs, _ = _filter(np.broadcast_to(y[None], (len(grid), *y.shape)), season, trial, origin,
                              multiplicative)
            best = np.argmin(errs, axis=0)
            par[:, k] = np.asarray(grid)[best]
            sse = errs[best, np.arange(n)]
    _, (level, trend, seas) = _filter(y, season, par, origin, multiplicative)
    damp = np.cumsum(par[:, 3:4] ** np.arange(1, horizon + 1)[None, :], axis=1)
    base = level[:, None] + trend[:, None] * damp
    future = seas[:, (origin + np.arange(horizon)) % season]
    return (base * future if multiplicative else base + future), sse


def smooth_forecast(units: np.ndarray, origin: int, horizon: int, season: int,
                    seasonality: str = "additive") -> np.ndarray:
    """Holt-Winters point forecasts ``(series, horizon)`` from ``origin``, fitted on ``units[:, :origin]``.

    Args:
        units: History ``(series, periods)`` (only ``[:, :origin]`` is read).
        origin: First forecast index.
        horizon: Steps ahead.
        season: Seasonal period (1: level and damped trend only). Falls back to 1 when the history is shorter
            than :func:`min_history`.
        seasonality: ``additive``, ``multiplicative`` (seasonal swings proportional to the level; series with a
            zero or negative value fall back to additive), or ``auto``: per series, the one of the two with the
            better fit criterion (see :func:`_filter`), as ETS picks a model by AIC.

    Returns:
        Non-negative forecasts.
    """
    y = units[:, :origin].astype(np.float64)
    if origin < min_history(season):
        season = 1
    if origin < 3:
        return np.repeat(y[:, -1:], horizon, axis=1) if origin else np.zeros((len(y), horizon))
    add, add_sse = _fit_forecast(y, season, horizon, False)
    if seasonality == "additive" or season == 1:
        return np.clip(add, 0.0, None)
    positive = (y > 0).all(axis=1)
    mult, mult_sse = _fit_forecast(np.where(positive[:, None], y, 1.0), season, horizon, True)
    use = positive if seasonality == "multiplicative" else positive & (mult_sse < add_sse)
    return np.clip(np.where(use[:, None], mult, add), 0.0, None)
