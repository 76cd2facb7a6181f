"""The forecasting data set: the sales panel, the rolling-origin backtest layout and the training windows."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipelines.data.schema import FamilyData
from pipelines.models.forecasting.panel import Panel, build_panel, calendar_features
from pipelines.models.forecasting.params import ForecastingParams
from pipelines.spec import DataContext

log = logging.getLogger(__name__)

FEATURE_SERVICE = "forecasting_v1"

NEEDS = FamilyData(("daily_sales",), kind="sales series, daily, weekly, monthly or quarterly",
                   note="horizon and seasonal period follow the inferred frequency")
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""


@dataclass
class Backtest:
    """Rolling-origin windows of ``horizon`` periods: origins, realised units and MASE scales.

    Attributes:
        origins: First forecast index of each window.
        actual: ``(origins, products, horizon)`` realised units.
        scale: ``(origins, products)`` MASE denominators (seasonal-naive in-sample MAE before each origin).
    """

    origins: list[int]
    actual: np.ndarray
    scale: np.ndarray


@dataclass
class ForecastData:
    """Panel, validation and holdout backtests, training windows and truth of one batch.

    The holdout is ``n_origins`` windows whose last one ends at the data's end; the validation backtest is the same
    layout just before it (its last window ends at the holdout's first origin), so candidates are selected and
    intervals calibrated without reading the holdout.

    Attributes:
        panel: Units and prices per product and period.
        calendar: Calendar covariates per period.
        horizon, lags: Steps forecast and read.
        season: Seasonal period used by the smoothing candidates and the MASE scale (1 when the history is too
            short).
        origins, actual, scale: The holdout backtest (see :class:`Backtest`).
        validation: The validation backtest.
        train_rows, train_origins: The network's training windows (product row, origin), all ending before
            ``origins[0]`` (the refit of a winning network).
        val_train_rows, val_train_origins: Training windows ending before the validation's first origin (empty when the
            history is too short for the network: it is then no candidate).
        oracle_mean: ``(origins, products, horizon)`` true mean demand, or ``None`` without generator truth.
        true_elasticity: ``(products,)`` generator's price elasticities, or ``None`` without truth.
    """

    panel: Panel
    calendar: np.ndarray
    horizon: int
    lags: int
    season: int
    origins: list[int]
    actual: np.ndarray
    scale: np.ndarray
    train_rows: np.ndarray
    train_origins: np.ndarray
    validation: Backtest | None = None
    val_train_rows: np.ndarray | None = None
    val_train_origins: np.ndarray | None = None
    oracle_mean: np.ndarray | None = None
    true_elasticity: np.ndarray | None = None

    @property
    def train_end(self) -> int:
        return self.origins[0]


def backtest_origins(end: int, horizon: int, n_origins: int, step: int) -> list[int]:
    """``n_origins`` origins ``step`` apart whose last window ends exactly at ``end``."""
    return [end - horizon - k * step for k in range(n_origins - 1, -1, -1)]


def backtest(units: np.ndarray, origins: list[int], horizon: int, season: int) -> Backtest:
    from pipelines.models.forecasting.metrics import mase_scale

    window = np.array(origins)[:, None] + np.arange(horizon)[None, :]
    return Backtest(origins=list(origins), actual=units[:, window].transpose(1, 0, 2),
                    scale=np.stack([mase_scale(units, o, season) for o in origins]))


def _windows(n_products: int, lags: int, last_origin: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(lags, last_origin + 1, stride)
    return np.repeat(np.arange(n_products), len(t)), np.tile(t, n_products)


def make_dataset(panel: Panel, params: ForecastingParams,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> ForecastData:
    """Holdout and validation backtests, training windows and MASE scales of a panel.

    Args:
        panel: The sales panel.
        params: Horizon, lags, origins and window stride.
        truth: ``(true mean demand per product and period, true elasticity per product)`` from
            :func:`~pipelines.models.forecasting.oracle.panel_truth`, or ``None``.

    Raises:
        ValueError: When the history cannot hold both backtests and a few periods to fit on before them.
    """
    from pipelines.models.forecasting.smoothing import MIN_FIT

    freq = panel.frequency
    horizon = params.horizon or freq.horizon
    lags = params.lags or freq.lags
    n = panel.n_periods
    step = params.origin_step or -(-horizon // params.n_origins)
    origins = backtest_origins(n, horizon, params.n_origins, step)
    val = backtest_origins(origins[0], horizon, params.n_origins, step)
    need = horizon + (params.n_origins - 1) * step
    if val[0] < MIN_FIT:
        raise ValueError(
            f"{n} {freq.name} periods are too few for two backtests (validation, then holdout) of "
            f"{params.n_origins} windows of {horizon} periods, {step} apart, and {MIN_FIT} periods to fit on; need "
            f"at least {2 * need + MIN_FIT} periods: bring more history or lower horizon/n_origins"
        )
    season = freq.season
    if val[0] < 2 * season + 1:
        log.warning("only %d %s periods before the validation backtest: too few for season %d, using no "
                    "seasonality in the smoothing candidates and the MASE scale", val[0], freq.name, season)
        season = 1
    rows, starts = _windows(len(panel.product_ids), lags, origins[0] - horizon, params.window_stride)
    val_train_rows, val_starts = _windows(len(panel.product_ids), lags, val[0] - horizon, params.window_stride)
    if len(val_starts) == 0:
        log.warning("%d %s periods before the validation backtest hold no training window of lags=%d + "
                    "horizon=%d: the network is no candidate", val[0], freq.name, lags, horizon)
    hold = backtest(panel.units, origins, horizon, season)
    oracle = None
    if truth is not None:
        window = np.array(origins)[:, None] + np.arange(horizon)[None, :]
        oracle = truth[0][:, window].transpose(1, 0, 2)
    return ForecastData(panel=panel, calendar=calendar_features(panel.dates), horizon=horizon, lags=lags,
                        season=season, origins=origins, actual=hold.actual, scale=hold.scale, train_rows=rows,
                        train_origins=starts, validation=backtest(panel.units, val, horizon, season),
                        val_train_rows=val_train_rows, val_train_origins=val_starts, oracle_mean=oracle,
                        true_elasticity=None if truth is None else truth[1])


def prepare(ctx: DataContext, params: ForecastingParams) -> ForecastData:
    """Panel from ``daily_sales``, the backtest layout and (generated data only) the oracle's true means."""
    from pipelines.data.kinds import require
    from pipelines.models.forecasting.oracle import panel_truth

    require(ctx, "forecasting")
    panel = build_panel(ctx.table("daily_sales"))
    data = make_dataset(panel, params, panel_truth(ctx, panel))
    log.info("forecasting: %d products x %d %s periods, horizon %d, lags %d, season %d, %d training windows",
             len(panel.product_ids), panel.n_periods, panel.frequency.name, data.horizon, data.lags, data.season,
             len(data.train_rows))
    return data
