"""Conformal P10/P90 bands from backtest residuals.

A candidate gives a lower, a middle and an upper forecast (the network its own P10/P50/P90; a point forecaster
the same point three times). On a rolling-origin backtest over the validation span (every origin of it, at most
``model.CALIBRATION``) the residuals of the actuals against the lower and the upper forecast, divided by the series'
recent error size (:func:`band_scale`) and by ``sqrt(step)`` (errors grow with the horizon), are pooled over series,
origins and steps; their 10 % and 90 % quantiles shift the bounds so that about 80 % of those actuals fall between
them. The shift is scaled back per series, origin and step at forecast time, so one calibration serves series of any
size.
"""

from __future__ import annotations

import numpy as np

LEVELS = (0.1, 0.9)
RECENT = 3
"""Seasons of history the band's scale is measured on (at least :data:`MIN_DIFFS` differences)."""
MIN_DIFFS = 24


def band_scale(units: np.ndarray, origin: int, season: int) -> np.ndarray:
    """``(series,)`` size of the errors at ``origin``: the seasonal-naive MAE over the recent seasons before it.

    Recent, not the whole history (the MASE scale): the swings of a growing retail series grow with its level, and a
    band scaled by its early, smaller swings is too narrow at the end. Falls back to the whole history's scale where
    the recent part is flat; NaN where that is flat too.
    """
    from pipelines.models.forecasting.metrics import mase_scale

    start = max(0, origin - max(RECENT * season, MIN_DIFFS) - season)
    recent = mase_scale(units[:, start:origin], origin - start, season)
    return np.where(np.isfinite(recent), recent, mase_scale(units, origin, season))


def _norm(scale: np.ndarray, horizon: int) -> np.ndarray:
    """``(origins, series, horizon)`` divisor: :func:`band_scale` (0 where undefined) x sqrt(step)."""
    return np.nan_to_num(scale, nan=0.0)[..., None] * np.sqrt(np.arange(1, horizon + 1))


def calibrate(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> dict[str, float]:
    """Shifts ``{"lower": a, "upper": b}`` (in scaled units) from validation forecasts and actuals.

    Args:
        lower, upper, actual: ``(origins, series, horizon)``.
        scale: ``(origins, series)`` :func:`band_scale` at each origin (NaN for flat series, which are left out).
    """
    norm = _norm(scale, actual.shape[-1])
    ok = norm > 0
    if not ok.any():
        return {"lower": 0.0, "upper": 0.0}
    low = (actual - lower)[ok] / norm[ok]
    high = (actual - upper)[ok] / norm[ok]
    return {"lower": float(np.quantile(low, LEVELS[0])), "upper": float(np.quantile(high, LEVELS[1]))}


def band(lower: np.ndarray, mid: np.ndarray, upper: np.ndarray, scale: np.ndarray,
         shifts: dict[str, float]) -> np.ndarray:
    """Calibrated ``(origins, series, horizon, 3)`` P10/P50/P90: non-negative and ordered."""
    norm = _norm(scale, mid.shape[-1])
    lo = np.minimum(lower + shifts["lower"] * norm, mid)
    hi = np.maximum(upper + shifts["upper"] * norm, mid)
    return np.clip(np.stack([lo, mid, hi], axis=-1), 0.0, None)
