"""Forecast accuracy over a rolling-origin backtest.

Shapes: ``actual`` is ``(origins, series, horizon)``; a point forecast has the same shape; quantile forecasts add
a last axis of the quantile levels; ``scale`` is ``(origins, series)``. Every metric is computed per origin and
then averaged over origins.
"""

from __future__ import annotations

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)


def mase_scale(units: np.ndarray, origin: int, season: int) -> np.ndarray:
    """In-sample MAE of the seasonal-naive forecast on ``units[:, :origin]``, per series (the MASE denominator).

    A series whose history is constant has scale 0 and is returned as NaN so that MASE ignores it.
    """
    hist = units[:, :origin].astype(np.float64)
    diffs = np.abs(hist[:, season:] - hist[:, :-season])
    scale = diffs.mean(axis=1)
    return np.where(scale > 0, scale, np.nan)


def scaled_errors(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``|error| / scale`` with the shape of ``actual``."""
    return np.abs(point - actual) / scale[..., None]


def mase(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float:
    """Mean over origins of the mean over series of (MAE over the horizon / seasonal-naive in-sample MAE)."""
    per_series = scaled_errors(point, actual, scale).mean(axis=-1)
    return float(np.mean(np.nanmean(per_series, axis=-1)))


def wape(point: np.ndarray, actual: np.ndarray) -> float:
    """Mean over origins of sum |error| / sum |actual| (pooled over series and horizon)."""
    num = np.abs(point - actual).sum(axis=(-2, -1))
    den = np.maximum(np.abs(actual).sum(axis=(-2, -1)), 1e-9)
    return float(np.mean(num / den))


def pinball(quantiles: np.ndarray, actual: np.ndarray, levels=QUANTILES) -> np.ndarray:
    """Pinball loss of each quantile forecast, shape of ``quantiles``."""
    q = np.asarray(levels, dtype=np.float64)
    diff = actual[..., None] - quantiles
    return np.maximum(q * diff, (q - 1) * diff)


def quantile_loss(quantiles: np.ndarray, actual: np.ndarray, levels=QUANTILES) -> float:
    """Weighted quantile loss: mean over levels of ``2 * sum pinball / sum |actual|``, averaged over origins.

    For a point forecast repeated at every level this equals its WAPE, so the two are on one scale.
    """
    num = 2 * pinball(quantiles, actual, levels).sum(axis=(-3, -2))  # (origins, levels)
    den = np.maximum(np.abs(actual).sum(axis=(-2, -1)), 1e-9)[:, None]
    return float(np.mean(num / den))


def coverage(quantiles: np.ndarray, actual: np.ndarray, lo: int = 0, hi: int = -1) -> float:
    """Share of actuals inside ``[quantiles[..., lo], quantiles[..., hi]]`` (0.8 is nominal for P10-P90)."""
    inside = (actual >= quantiles[..., lo]) & (actual <= quantiles[..., hi])
    return float(inside.mean())


def error_by_horizon(point: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scaled absolute error per horizon step (mean over origins and series), shape ``(horizon,)``."""
    return np.nanmean(scaled_errors(point, actual, scale), axis=(0, 1))
