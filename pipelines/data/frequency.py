"""Sampling frequency of a sales table (``daily_sales`` schema): daily, weekly, monthly or quarterly.

Data-generic, so the platform (validation's freshness window, the import's family report) and the families
(forecasting's panel, pricing's daily-only check) share one inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Frequency:
    """A supported sampling frequency and its defaults.

    Attributes:
        name: ``daily``, ``weekly``, ``monthly`` or ``quarterly``.
        days: Nominal spacing in days.
        season: Seasonal period in steps (weekly cycle for daily data, yearly cycle otherwise).
        horizon: Default forecast horizon in steps.
        lags: Default length of the input window in steps.
    """

    name: str
    days: float
    season: int
    horizon: int
    lags: int


FREQUENCIES: dict[str, Frequency] = {
    f.name: f
    for f in (
        Frequency("daily", 1.0, 7, 28, 56),
        Frequency("weekly", 7.0, 52, 8, 26),
        Frequency("monthly", 30.44, 12, 6, 12),
        Frequency("quarterly", 91.31, 4, 4, 8),
    )
}

_INFER_FREQ_PREFIX = {"D": "daily", "W": "weekly", "M": "monthly", "MS": "monthly", "ME": "monthly",
                      "Q": "quarterly", "QS": "quarterly", "QE": "quarterly"}


def infer_frequency(dates: pd.Series | pd.DatetimeIndex) -> Frequency:
    """Frequency of a set of dates: ``pd.infer_freq`` when the dates are exactly regular, else the median spacing.

    Raises:
        ValueError: With fewer than 3 distinct dates, or a spacing that is none of daily, weekly, monthly or
            quarterly.
    """
    uniq = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates), utc=True).drop_duplicates()).sort_values()
    if len(uniq) < 3:
        raise ValueError(f"need at least 3 distinct dates to infer the sales frequency, got {len(uniq)}")
    try:
        code = pd.infer_freq(uniq.tz_localize(None))
    except (TypeError, ValueError):
        code = None
    if code:
        prefix = code.split("-")[0].lstrip("0123456789").upper()
        if prefix in _INFER_FREQ_PREFIX and not code[0].isdigit():
            return FREQUENCIES[_INFER_FREQ_PREFIX[prefix]]
    spacing = float(np.median(np.diff(uniq.asi8)) / 86_400e9)
    for freq, (lo, hi) in (("daily", (0.5, 1.5)), ("weekly", (5.0, 9.0)), ("monthly", (26.0, 35.0)),
                           ("quarterly", (80.0, 100.0))):
        if lo <= spacing <= hi:
            return FREQUENCIES[freq]
    raise ValueError(f"median spacing of the sales dates is {spacing:.1f} days: not daily, weekly, monthly or "
                     "quarterly")


def sales_frequency(daily_sales: pd.DataFrame) -> str | None:
    """Inferred frequency name of a sales table (``daily``, ``weekly``, ...), or ``None`` when it cannot be told."""
    try:
        return infer_frequency(daily_sales["date"]).name
    except ValueError:
        return None
