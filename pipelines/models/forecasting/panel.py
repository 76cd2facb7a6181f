"""Sales table -> regular panel: gap filling and calendar covariates.

The forecasting family works on a dense ``(products, periods)`` panel of units and prices built from a table in
the ``daily_sales`` schema (``product_id``, ``date``, ``price``, ``units``). The generator writes daily rows, but a
user may bring weekly, monthly or quarterly sales in the same schema; the frequency is inferred from the dates
(:func:`pipelines.data.frequency.infer_frequency`) and sets the seasonal period and the default horizon and lag
window.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data.frequency import Frequency, infer_frequency

log = logging.getLogger(__name__)

N_CALENDAR = 11
"""Calendar covariates per period: day-of-week one-hot (7) and two yearly harmonics (sin/cos each)."""


@dataclass
class Panel:
    """Dense sales panel on a regular time grid.

    Attributes:
        product_ids: One id per row.
        dates: The regular grid (UTC), one per column.
        units: Units sold, shape ``(products, periods)``; periods without a row count as 0 units.
        price: Selling price, same shape; gaps are filled from the nearest known price of the product.
        frequency: The inferred :class:`Frequency`.
    """

    product_ids: list[str]
    dates: pd.DatetimeIndex
    units: np.ndarray
    price: np.ndarray
    frequency: Frequency

    @property
    def n_periods(self) -> int:
        return len(self.dates)


def regular_grid(dates: pd.Series, freq: Frequency) -> pd.DatetimeIndex:
    """The regular time grid covering ``dates``.

    Daily and weekly grids are fixed steps from the first date, so missing periods are filled in. Monthly and
    quarterly periods have uneven lengths, so the grid is the distinct dates themselves and a gap of more than
    one period is an error.

    Raises:
        ValueError: When dates fall off the grid (e.g. mixed weekdays in weekly data) or a period is missing.
    """
    uniq = pd.DatetimeIndex(pd.to_datetime(pd.Series(dates), utc=True).drop_duplicates()).sort_values()
    if freq.name in ("daily", "weekly"):
        grid = pd.date_range(uniq[0], uniq[-1], freq=f"{int(freq.days)}D")
        off = uniq.difference(grid)
        if len(off):
            raise ValueError(f"{len(off)} sales date(s) are off the {freq.name} grid starting {uniq[0].date()}, "
                             f"e.g. {off[0].date()}; use one date per period")
        if len(grid) > len(uniq):
            log.warning("%d %s period(s) without any sales row are filled with 0 units", len(grid) - len(uniq),
                        freq.name)
        return grid
    gaps = np.diff(uniq.asi8) / 86_400e9
    if gaps.max() > 1.5 * freq.days:
        at = int(np.argmax(gaps))
        raise ValueError(f"{freq.name} sales have a gap of {gaps[at]:.0f} days after {uniq[at].date()}; "
                         "every period needs at least one sales row")
    return uniq


def build_panel(sales: pd.DataFrame) -> Panel:
    """Dense panel from a table in the ``daily_sales`` schema (any supported frequency).

    Missing (product, period) rows count as 0 units (no sale recorded); their price is carried forward from the
    product's previous period (backward for leading gaps).

    Raises:
        ValueError: On an empty table, an unsupported frequency or an irregular grid.
    """
    if sales.empty:
        raise ValueError("the daily_sales table is empty")
    df = sales[["product_id", "date", "price", "units"]].copy()
    df["date"] = pd.to_datetime(df["date"], utc=True)
    df["product_id"] = df["product_id"].astype(str)
    freq = infer_frequency(df["date"])
    grid = regular_grid(df["date"], freq)
    ids = sorted(df["product_id"].unique())
    units = (df.pivot_table(index="product_id", columns="date", values="units", aggfunc="sum")
             .reindex(index=ids, columns=grid))
    price = (df.pivot_table(index="product_id", columns="date", values="price", aggfunc="mean")
             .reindex(index=ids, columns=grid))
    price = price.ffill(axis=1).bfill(axis=1)
    return Panel(product_ids=ids, dates=grid, units=units.fillna(0).to_numpy(dtype=np.float64),
                 price=price.to_numpy(dtype=np.float64), frequency=freq)


def calendar_features(dates: pd.DatetimeIndex) -> np.ndarray:
    """Calendar covariates of each date, shape ``(len(dates), N_CALENDAR)``.

    Day-of-week one-hot (constant for weekly and coarser data, which is harmless) and the first two harmonics
    of the day of the year, which carry yearly seasonality at every frequency.
    """
    dates = pd.DatetimeIndex(dates)
    dow = np.eye(7)[dates.dayofweek.to_numpy()]
    angle = 2 * np.pi * (dates.dayofyear.to_numpy() - 1) / 365.25
    yearly = np.stack([np.sin(angle), np.cos(angle), np.sin(2 * angle), np.cos(2 * angle)], axis=1)
    return np.concatenate([dow, yearly], axis=1).astype(np.float32)


def extend_dates(dates: pd.DatetimeIndex, freq: Frequency, n: int) -> pd.DatetimeIndex:
    """``dates`` followed by ``n`` more periods of ``freq`` (for forecasts that run past the data)."""
    step = {"daily": pd.DateOffset(days=1), "weekly": pd.DateOffset(weeks=1), "monthly": pd.DateOffset(months=1),
            "quarterly": pd.DateOffset(months=3)}[freq.name]
    extra = [dates[-1] + step * (k + 1) for k in range(n)]
    return dates.append(pd.DatetimeIndex(extra))
