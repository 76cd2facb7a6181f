"""Demand forecasting: units per product over the next ``horizon`` periods, as P10 / P50 / P90.

Data: the ``daily_sales`` table (units and selling price per product and period) turned into a dense panel; the
frequency (daily for generated shops; weekly, monthly or quarterly for imported sales) is inferred from the
dates and sets the seasonal period, the default horizon (28 days, 8 weeks, 6 months, 4 quarters) and the lag
window. Covariates: the lag window of units and prices, the product (an embedding), the calendar (day of week,
day of year) and the *future* prices of the horizon, which are fair to use because the shop sets them.

Model: one global PyTorch network for all products (:mod:`pipelines.forecast.net`) trained with the pinball
loss; price acts through a learnt log-log demand curve (an elasticity per product). Evaluation is a rolling-origin backtest: ``n_origins`` back-to-back windows of ``horizon`` periods at the
end of the history; the network is fitted once on windows that end before the first origin and conditions on
the realised history up to each origin. Baselines: seasonal naive and additive Holt-Winters
(:mod:`pipelines.forecast.baselines`). Oracle (generated data only): Poisson noise around the generator's true
mean demand at the realised prices. Metrics (mean over origins): MASE (primary), WAPE, weighted quantile loss,
P10-P90 coverage.

Feast: the family declares ``forecasting_v1`` for lineage, but reads ``daily_sales`` directly, because it needs
the whole lag window and the future prices, not the 7/28-day aggregates of the ``product_sales`` view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from pipelines.forecast.data import Panel, build_panel, calendar_features, extend_dates
from pipelines.forecast.metrics import QUANTILES
from pipelines.serving import batch_values
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedResponse, ServingSpec
from pipelines.utils import pinned_requirements

log = logging.getLogger(__name__)

FEATURE_SERVICE = "forecasting_v1"


class ForecastingParams(ModelParams):
    """Hyper-parameters of the forecasting model (override with ``--set key=value``).

    ``horizon`` and ``lags`` default by the inferred frequency (daily 28/56, weekly 8/26, monthly 6/12,
    quarterly 4/8 periods).
    """

    horizon: int | None = Field(None, ge=1, le=366, description="Forecast steps (default by frequency).")
    lags: int | None = Field(None, ge=2, le=730, description="Input window in steps (default by frequency).")
    n_origins: int = Field(3, ge=1, le=12, description="Backtest origins, each followed by `horizon` steps.")
    window_stride: int = Field(1, ge=1, le=28, description="Step between training window origins.")
    hidden: int = Field(64, ge=4, le=1024)
    embedding_dim: int = Field(8, ge=0, le=128, description="Product embedding size (0: no product identity).")
    dropout: float = Field(0.1, ge=0, lt=1)
    steps: int = Field(400, ge=1, le=100_000, description="Gradient steps (independent of the data size).")
    batch_size: int = Field(512, ge=8, le=65536)
    learning_rate: float = Field(3e-3, gt=0, le=1)
    weight_decay: float = Field(1e-5, ge=0)
    threads: int = Field(1, ge=1, le=64, description="Torch CPU threads for training (1 suits this small net).")


@dataclass
class ForecastData:
    """Panel, backtest layout and truth of one batch.

    Attributes:
        panel: Units and prices per product and period.
        calendar: Calendar covariates per period.
        horizon, lags: Steps forecast and read.
        season: Seasonal period used by the baselines and the MASE scale (1 when the history is too short).
        origins: First forecast index of each backtest window (back to back, the last ends at the data's end).
        actual: ``(origins, products, horizon)`` realised units of the backtest windows.
        scale: ``(origins, products)`` MASE denominators (seasonal-naive in-sample MAE before each origin).
        train_rows, train_origins: Training windows (product row, origin), all ending before ``origins[0]``.
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
    oracle_mean: np.ndarray | None = None
    true_elasticity: np.ndarray | None = None

    @property
    def train_end(self) -> int:
        return self.origins[0]


@dataclass
class Forecaster:
    """A trained (or registry-loaded) forecaster: the network plus what is needed to build its inputs.

    Attributes:
        net: A :class:`~pipelines.forecast.net.ForecastNet`, or its ``torch.export`` module when loaded back.
        meta: JSON-able ``product_ids`` (embedding rows 1..n), ``lags``, ``horizon``, ``frequency``, ``season``,
            ``n_calendar`` and ``quantiles``; logged as the MLflow model's metadata.
        losses: Training loss curve, one point per block of steps (empty when loaded from the registry).
    """

    net: Any
    meta: dict[str, Any]
    losses: list[float] = field(default_factory=list)

    def product_index(self, product_ids: list[str]) -> np.ndarray:
        """Embedding row of each id (0 for products the model has not seen)."""
        known = {pid: i + 1 for i, pid in enumerate(self.meta["product_ids"])}
        return np.array([known.get(pid, 0) for pid in product_ids], dtype=np.int64)


# ---------------------------------------------------------------------------------------------- data


def backtest_origins(n_periods: int, horizon: int, n_origins: int) -> list[int]:
    """Back-to-back origins whose windows end exactly at the end of the data."""
    return [n_periods - k * horizon for k in range(n_origins, 0, -1)]


def make_dataset(panel: Panel, params: ForecastingParams,
                 truth: tuple[np.ndarray, np.ndarray] | None = None) -> ForecastData:
    """Backtest layout, training windows and MASE scales of a panel.

    Args:
        panel: The sales panel.
        params: Horizon, lags, origins and window stride.
        truth: ``(true mean demand per product and period, true elasticity per product)`` from
            :func:`panel_truth`, or ``None``.

    Raises:
        ValueError: When the history cannot hold the lag window, one training window and the backtest.
    """
    from pipelines.forecast.metrics import mase_scale

    freq = panel.frequency
    horizon = params.horizon or freq.horizon
    lags = params.lags or freq.lags
    n = panel.n_periods
    origins = backtest_origins(n, horizon, params.n_origins)
    train_end = origins[0]
    last_train_origin = train_end - horizon
    if last_train_origin < lags:
        raise ValueError(
            f"{n} {freq.name} periods are too few for lags={lags} + horizon={horizon} of training and "
            f"{params.n_origins} backtest windows of {horizon}; need at least {lags + horizon * (params.n_origins + 1)}"
            " periods: bring more history or lower lags/horizon/n_origins"
        )
    season = freq.season
    if train_end < 2 * season + 1:
        log.warning("only %d %s periods before the backtest: too few for season %d, using no seasonality in the "
                    "baselines and the MASE scale", train_end, freq.name, season)
        season = 1
    t = np.arange(lags, last_train_origin + 1, params.window_stride)
    rows = np.repeat(np.arange(len(panel.product_ids)), len(t))
    starts = np.tile(t, len(panel.product_ids))
    window = np.array(origins)[:, None] + np.arange(horizon)[None, :]
    actual = panel.units[:, window].transpose(1, 0, 2)
    scale = np.stack([mase_scale(panel.units, o, season) for o in origins])
    oracle = None if truth is None else truth[0][:, window].transpose(1, 0, 2)
    return ForecastData(panel=panel, calendar=calendar_features(panel.dates), horizon=horizon, lags=lags,
                        season=season, origins=origins, actual=actual, scale=scale, train_rows=rows,
                        train_origins=starts, oracle_mean=oracle,
                        true_elasticity=None if truth is None else truth[1])


def panel_truth(ctx: DataContext, panel: Panel) -> tuple[np.ndarray, np.ndarray] | None:
    """Generator's true mean demand of every (product, day) at the realised prices, and each product's true
    elasticity; ``None`` without truth (imported data)."""
    if ctx.truth_dir is None or panel.frequency.name != "daily":
        return None
    from pipelines.data.generator import load_truth, true_mean_demand

    _, products_truth, _ = load_truth(ctx.truth_dir)
    truth = products_truth.set_index(products_truth["product_id"].astype(str)).reindex(panel.product_ids)
    base_price = (ctx.table("products").assign(product_id=lambda d: d["product_id"].astype(str))
                  .set_index("product_id")["base_price"].reindex(panel.product_ids))
    if truth["elasticity"].isna().any() or base_price.isna().any():
        log.warning("truth does not cover every product of the sales table: no oracle")
        return None
    elasticity = truth["elasticity"].to_numpy(dtype=np.float64)
    mean = true_mean_demand(truth["base_demand"].to_numpy(dtype=np.float64)[:, None], elasticity[:, None],
                            base_price.to_numpy(dtype=np.float64)[:, None], panel.price, panel.dates)
    return mean, elasticity


def prepare(ctx: DataContext, params: ForecastingParams) -> ForecastData:
    """Panel from ``daily_sales``, the backtest layout and (generated data only) the oracle's true means."""
    from pipelines.data.kinds import require

    require(ctx, "forecasting")
    panel = build_panel(ctx.table("daily_sales"))
    data = make_dataset(panel, params, panel_truth(ctx, panel))
    log.info("forecasting: %d products x %d %s periods, horizon %d, lags %d, season %d, %d training windows",
             len(panel.product_ids), panel.n_periods, panel.frequency.name, data.horizon, data.lags, data.season,
             len(data.train_rows))
    return data


# ---------------------------------------------------------------------------------------------- model


def fit(data: ForecastData, params: ForecastingParams) -> Forecaster:
    """Train the global quantile network on windows ending before the first backtest origin."""
    from pipelines.forecast import net as fnet
    from pipelines.utils import pick_device

    panel = data.panel
    cfg = fnet.TrainConfig(hidden=params.hidden, embedding_dim=params.embedding_dim, dropout=params.dropout,
                           steps=params.steps, batch_size=params.batch_size, learning_rate=params.learning_rate,
                           weight_decay=params.weight_decay, seed=params.seed,
                           threads=params.threads)
    index = np.arange(1, len(panel.product_ids) + 1)
    # Training only reads periods before the first backtest origin: cut the panel so nothing later can leak.
    end = data.train_end
    result = fnet.train(panel.units[:, :end], panel.price[:, :end], data.calendar[:end], index,
                        data.train_rows, data.train_origins, data.lags, data.horizon, cfg, device=pick_device())
    log.info("forecasting: trained on %d windows in %.1f s (final pinball %.4f)", len(data.train_rows),
             result.seconds, result.losses[-1])
    meta = {"product_ids": list(panel.product_ids), "lags": data.lags, "horizon": data.horizon,
            "frequency": panel.frequency.name, "season": data.season, "n_calendar": int(data.calendar.shape[1]),
            "quantiles": list(QUANTILES)}
    return Forecaster(net=result.net, meta=meta, losses=result.losses)


def forecast(model: Forecaster, data: ForecastData, origins: list[int] | None = None,
             price: np.ndarray | None = None) -> np.ndarray:
    """Quantile forecasts ``(origins, products, horizon, 3)`` of the model from each origin.

    Args:
        model: A trained or loaded :class:`Forecaster`.
        data: The data set (history up to each origin is the input).
        origins: Forecast origins (default: the backtest origins).
        price: Price panel to use instead of the realised one (what-if scenarios, e.g. a planned promotion).

    Raises:
        ValueError: When the model was trained on another sampling frequency, or an origin has less history
            than the model's lag window.
    """
    from pipelines.forecast.net import pack_inputs, predict

    if model.meta["frequency"] != data.panel.frequency.name:
        raise ValueError(f"model forecasts {model.meta['frequency']} data, the data set is "
                         f"{data.panel.frequency.name}")
    origins = data.origins if origins is None else origins
    lags, horizon = int(model.meta["lags"]), int(model.meta["horizon"])
    if min(origins) < lags:
        raise ValueError(f"the model reads {lags} periods of history; origin {min(origins)} has fewer")
    n_products = len(data.panel.product_ids)
    price = data.panel.price if price is None else price
    if max(origins) + horizon > price.shape[1]:
        # The last window may run past the data (a real forecast): pad prices with the last known price.
        pad = max(origins) + horizon - price.shape[1]
        price = np.concatenate([price, np.repeat(price[:, -1:], pad, axis=1)], axis=1)
    calendar = data.calendar
    if max(origins) + horizon > data.panel.n_periods:
        extra = max(origins) + horizon - data.panel.n_periods
        calendar = calendar_features(extend_dates(data.panel.dates, data.panel.frequency, extra))
    rows = np.tile(np.arange(n_products), len(origins))
    starts = np.repeat(np.asarray(origins), n_products)
    x = pack_inputs(data.panel.units, price, calendar, model.product_index(data.panel.product_ids), rows, starts,
                    lags, horizon)
    return predict(model.net, x).reshape(len(origins), n_products, horizon, 3)


def _comparable(model: Forecaster, data: ForecastData) -> int:
    """Horizon steps on which a model can be compared with the data set's backtest."""
    steps = min(int(model.meta["horizon"]), data.horizon)
    if steps != data.horizon:
        log.warning("model horizon %s differs from the data set's %d: comparing the first %d steps",
                    model.meta["horizon"], data.horizon, steps)
    return steps


def score(model: Forecaster, data: ForecastData) -> float:
    """Backtest MASE of the model's P50 (mean over origins); ``inf`` if it cannot forecast this frequency."""
    from pipelines.forecast.metrics import mase

    if model.meta["frequency"] != data.panel.frequency.name:
        log.warning("model was trained on %s data and cannot forecast %s sales: scored as inf",
                    model.meta["frequency"], data.panel.frequency.name)
        return float("inf")
    steps = _comparable(model, data)
    q = forecast(model, data)[..., :steps, :]
    return mase(q[..., 1], data.actual[..., :steps], data.scale)


def implied_elasticity(model: Forecaster, data: ForecastData, change: float = 0.9,
                       origin: int | None = None) -> np.ndarray:
    """Price elasticity the model implies per product: ``log(P50 ratio) / log(price ratio)``.

    Prices over the whole horizon from ``origin`` (default: the last backtest origin) are multiplied by
    ``change`` and the summed P50 forecasts compared. Works on trained and registry-loaded models alike.
    """
    origin = data.origins[-1] if origin is None else origin
    horizon = int(model.meta["horizon"])
    price = data.panel.price.copy()
    price[:, origin:origin + horizon] *= change
    base = forecast(model, data, [origin])[0, :, :, 1].sum(axis=1)
    moved = forecast(model, data, [origin], price=price)[0, :, :, 1].sum(axis=1)
    return np.log(moved / base) / np.log(change)


def poisson_quantiles(mean: np.ndarray, levels=QUANTILES) -> np.ndarray:
    """Quantiles of Poisson(mean) at each level, stacked on a new last axis (the oracle's predictive law).

    The smallest ``k`` with ``P(Y <= k) >= q``, from the continuous inverse ``pdtrik`` (``scipy.stats`` costs
    seconds to import and gives the same numbers).
    """
    from scipy.special import pdtr, pdtrik

    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-12)
    out = []
    for q in levels:
        k = np.maximum(np.ceil(pdtrik(q, mean)), 0.0)
        # pdtrik is continuous: step back when the integer below already reaches q.
        k = np.where((k > 0) & (pdtr(k - 1, mean) >= q), k - 1, k)
        out.append(k)
    return np.stack(out, axis=-1)


# ---------------------------------------------------------------------------------------------- evaluation


def baseline_forecasts(data: ForecastData) -> dict[str, np.ndarray]:
    """Point forecasts ``(origins, products, horizon)`` of each baseline."""
    from pipelines.forecast.baselines import holt_winters, seasonal_naive

    units = data.panel.units
    naive = np.stack([seasonal_naive(units, o, data.horizon, data.season) for o in data.origins])
    hw = holt_winters(units, data.origins, data.horizon, data.season, fit_end=data.train_end)
    return {"seasonal_naive": naive, "holt_winters": hw}


def evaluate(model: Forecaster, data: ForecastData, params: ForecastingParams) -> Evaluation:
    """Backtest the model, the baselines and the oracle with the same metrics, and draw the diagnostics."""
    from pipelines.forecast import metrics as m

    y, scale = data.actual, data.scale
    q = forecast(model, data)
    p50 = q[..., 1]
    metrics: dict[str, float] = {
        "mase": m.mase(p50, y, scale), "wape": m.wape(p50, y), "quantile_loss": m.quantile_loss(q, y),
        "coverage_p10_p90": m.coverage(q, y),
        "bias": float((p50 - y).sum() / max(y.sum(), 1e-9)),
        **{f"mase_origin_{k + 1}": m.mase(p50[k:k + 1], y[k:k + 1], scale[k:k + 1]) for k in range(len(data.origins))},
        "n_series": float(y.shape[1]), "n_origins": float(len(data.origins)), "horizon": float(data.horizon),
        "train_windows": float(len(data.train_rows)),
    }
    bases = baseline_forecasts(data)
    baselines = {}
    for name, point in bases.items():
        baselines[name] = m.mase(point, y, scale)
        metrics[f"baseline_{name}_wape"] = m.wape(point, y)
    curves = {"model P50": m.error_by_horizon(p50, y, scale)}
    curves.update({name: m.error_by_horizon(point, y, scale) for name, point in bases.items()})

    oracle = None
    oracle_q = None
    if data.oracle_mean is not None:
        oracle_q = poisson_quantiles(data.oracle_mean)
        # The oracle's point forecast is its median, as for the model: the best point under absolute error.
        oracle = m.mase(oracle_q[..., 1], y, scale)
        metrics.update({
            "oracle_wape": m.wape(oracle_q[..., 1], y), "oracle_quantile_loss": m.quantile_loss(oracle_q, y),
            "oracle_coverage_p10_p90": m.coverage(oracle_q, y),
            "oracle_mean_mase": m.mase(data.oracle_mean, y, scale),
        })
        curves["oracle"] = m.error_by_horizon(oracle_q[..., 1], y, scale)

    elasticity = implied_elasticity(model, data)
    metrics["implied_elasticity_median"] = float(np.median(elasticity))
    if data.true_elasticity is not None:
        metrics["elasticity_mae"] = float(np.mean(np.abs(elasticity - data.true_elasticity)))
        metrics["elasticity_corr"] = float(np.corrcoef(elasticity, data.true_elasticity)[0, 1])

    panel = data.panel
    figures = {
        "forecasts.png": _plot_forecasts(data, q, bases["seasonal_naive"], data.oracle_mean),
        "error_by_horizon.png": _plot_error_by_horizon(curves, panel.frequency.name),
        "quantile_calibration.png": _plot_calibration(q, oracle_q, y),
        "price_elasticity.png": _plot_elasticity(elasticity, data.true_elasticity),
    }
    if model.losses:
        figures["training_loss.png"] = _plot_losses(model.losses)
    dates = panel.dates
    return Evaluation(
        metrics=metrics, baselines=baselines, oracle=oracle, figures=figures,
        extra_params={
            "frequency": panel.frequency.name, "season": data.season, "horizon_steps": data.horizon,
            "lag_steps": data.lags, "n_products": len(panel.product_ids),
            "train_end": str(dates[data.train_end - 1].date()),
            "backtest_origins": ",".join(str(dates[o].date()) for o in data.origins),
        },
    )


# ---------------------------------------------------------------------------------------------- plots


def _plot_forecasts(data: ForecastData, q: np.ndarray, naive: np.ndarray, oracle: np.ndarray | None):
    """Actuals vs P50 with the P10-P90 band over the whole backtest, for four products from busy to quiet."""
    import matplotlib.pyplot as plt

    panel, h = data.panel, data.horizon
    volume = panel.units[:, :data.train_end].sum(axis=1)
    order = np.argsort(-volume, kind="stable")
    picks = list(dict.fromkeys(order[np.linspace(0, len(order) - 1, min(4, len(order))).round().astype(int)]))
    span = np.concatenate([np.arange(o, o + h) for o in data.origins])
    history = np.arange(max(0, data.origins[0] - 2 * h), data.origins[0])
    fig, axes = plt.subplots(len(picks), 1, figsize=(10, 2.6 * len(picks)), sharex=True, squeeze=False)
    for ax, i in zip(axes[:, 0], picks):
        ax.plot(panel.dates[history], panel.units[i, history], color="0.5", lw=1, label="history")
        ax.plot(panel.dates[span], panel.units[i, span], color="k", lw=1, label="actual")
        ax.fill_between(panel.dates[span], q[:, i, :, 0].ravel(), q[:, i, :, 2].ravel(), color="C0", alpha=0.25,
                        label="P10-P90")
        ax.plot(panel.dates[span], q[:, i, :, 1].ravel(), color="C0", lw=1.5, label="P50")
        ax.plot(panel.dates[span], naive[:, i, :].ravel(), color="C1", lw=1, ls=":", label="seasonal naive")
        if oracle is not None:
            ax.plot(panel.dates[span], oracle[:, i, :].ravel(), color="C2", lw=1, ls="--", label="true mean")
        for o in data.origins:
            ax.axvline(panel.dates[o], color="0.7", lw=0.8, ls="--")
        ax.set_ylabel("units")
        ax.set_title(f"{panel.product_ids[i]} (rank {int(np.flatnonzero(order == i)[0]) + 1} by volume)",
                     fontsize=9)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    axes[-1, 0].xaxis.set_major_locator(locator)
    axes[-1, 0].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axes[0, 0].legend(fontsize=7, ncol=6, loc="upper left")
    fig.suptitle("Backtest forecasts (dashed lines: forecast origins)")
    fig.tight_layout()
    return fig


def _plot_error_by_horizon(curves: dict[str, np.ndarray], freq: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, err in curves.items():
        ax.plot(np.arange(1, len(err) + 1), err, marker=".", label=name)
    ax.set(xlabel=f"horizon ({freq} steps ahead)", ylabel="|error| / seasonal-naive in-sample MAE",
           title="Scaled error by horizon (backtest mean)")
    ax.legend()
    fig.tight_layout()
    return fig


def _plot_calibration(q: np.ndarray, oracle_q: np.ndarray | None, y: np.ndarray):
    """Observed share of actuals below each forecast quantile vs its nominal level."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.plot(QUANTILES, [(y <= q[..., k]).mean() for k in range(len(QUANTILES))], marker="o", label="model")
    if oracle_q is not None:
        ax.plot(QUANTILES, [(y <= oracle_q[..., k]).mean() for k in range(len(QUANTILES))], marker="s",
                label="oracle (Poisson, true mean)")
    ax.set(xlabel="nominal quantile", ylabel="share of actuals <= forecast", title="Quantile calibration")
    ax.legend()
    fig.tight_layout()
    return fig


def _plot_elasticity(implied: np.ndarray, true: np.ndarray | None):
    """Implied price elasticity per product (a 10 % price cut over the horizon), against the truth if known."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if true is None:
        ax.hist(implied, bins=20)
        ax.set(xlabel="implied elasticity", ylabel="products")
    else:
        lo, hi = min(implied.min(), true.min()) - 0.1, max(implied.max(), true.max()) + 0.1
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.scatter(true, implied, s=12)
        ax.set(xlabel="true elasticity (generator)", ylabel="implied by the model")
    ax.set_title("Price elasticity per product")
    fig.tight_layout()
    return fig


def _plot_losses(losses: list[float]):
    import matplotlib.pyplot as plt

    from pipelines.forecast.net import LOSS_EVERY

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(np.arange(1, len(losses) + 1) * LOSS_EVERY, losses, marker=".")
    ax.set(xlabel="gradient step", ylabel="pinball loss (scaled units)", title="Training loss")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- MLflow


def export_arguments(model: Forecaster, data: ForecastData) -> dict[str, Any]:
    """Keyword arguments of ``mlflow.pytorch.log_model``/``save_model`` for a forecaster.

    The network is saved as a ``torch.export`` program (MLflow's default, pickle-free format) from a CPU copy;
    the packed-input example fixes the input width and the batch dimension stays dynamic. ``model.meta``
    (product ids, lags, horizon, frequency) becomes the MLflow model's metadata, which :func:`load_model`
    reads back.
    """
    import copy

    import torch
    from mlflow.models import infer_signature

    from pipelines.forecast.net import pack_inputs

    net = copy.deepcopy(model.net).to("cpu").eval()
    n = min(5, len(data.panel.product_ids))
    example = pack_inputs(data.panel.units, data.panel.price, data.calendar,
                          model.product_index(data.panel.product_ids), np.arange(n),
                          np.full(n, data.origins[-1]), int(model.meta["lags"]), int(model.meta["horizon"]))
    with torch.no_grad():
        output = net(torch.from_numpy(example)).numpy()
    requirements = pinned_requirements("torch", "numpy", "mlflow")
    return {"pytorch_model": net, "signature": infer_signature(example, output), "input_example": example,
            "metadata": model.meta, "pip_requirements": requirements}


def log_model(model: Forecaster, data: ForecastData):
    """Log the network with the native PyTorch flavor and its input metadata (see :func:`export_arguments`)."""
    import mlflow

    return mlflow.pytorch.log_model(name="model", **export_arguments(model, data))


def load_model(uri: str) -> Forecaster:
    """Load the exported network and its metadata back into a :class:`Forecaster` (any model URI or path)."""
    import mlflow
    from mlflow.models import Model

    local = mlflow.artifacts.download_artifacts(uri)
    return Forecaster(net=mlflow.pytorch.load_model(local), meta=dict(Model.load(local).metadata))


# ------------------------------------------------------------------------------------------------ serving


class ForecastRequest(ApiModel):
    product_id: str = Field(min_length=1, max_length=64)
    horizon: int = Field(28, ge=1, le=366, description="Periods ahead (at most the model's horizon).")
    price_plan: list[Annotated[float, Field(gt=0, le=1e7)]] | None = Field(
        None, max_length=366, description="Planned price per period (what-if); default: the last known price.")


class ForecastPoint(ApiModel):
    date: str
    p10: float = Field(ge=0)
    p50: float = Field(ge=0)
    p90: float = Field(ge=0)


class ForecastResponse(ServedResponse):
    product_id: str
    frequency: str
    forecast: list[ForecastPoint]


@dataclass
class ServedForecaster:
    """The registered forecaster plus the sales history it reads (the current batch's panel)."""

    model: Forecaster
    data: ForecastData
    index: dict[str, int]


def serve_load(settings, uri: str) -> ServedForecaster:
    from pipelines.training import data_context

    model = load_model(uri)
    panel = build_panel(data_context(settings).table("daily_sales"))
    empty = np.zeros((0,), dtype=np.int64)
    data = ForecastData(panel, calendar_features(panel.dates), int(model.meta["horizon"]), int(model.meta["lags"]),
                        1, [panel.n_periods], np.zeros((1, len(panel.product_ids), 0)),
                        np.ones((1, len(panel.product_ids))), empty, empty)
    return ServedForecaster(model, data, {p: i for i, p in enumerate(panel.product_ids)})


def serve_predict(served: ServedForecaster, request: ForecastRequest) -> dict:
    """P10/P50/P90 units per period from the end of the history, optionally under a price plan."""
    from pipelines.serving import NotFound, RequestError

    horizon = int(served.model.meta["horizon"])
    if request.horizon > horizon:
        raise RequestError("horizon", f"{request.horizon} periods asked; this model forecasts at most {horizon}")
    row = served.index.get(request.product_id)
    if row is None:
        raise NotFound("product_id", f"unknown product {request.product_id!r} (no sales history)")
    if request.price_plan is not None and len(request.price_plan) > request.horizon:
        raise RequestError("price_plan", f"{len(request.price_plan)} prices for a horizon of {request.horizon}")
    panel = served.data.panel
    price = None
    if request.price_plan:
        plan = np.repeat(panel.price[:, -1:], horizon, axis=1)
        plan[row, :len(request.price_plan)] = request.price_plan
        plan[row, len(request.price_plan):] = request.price_plan[-1]
        price = np.concatenate([panel.price, plan], axis=1)
    q = forecast(served.model, served.data, origins=[panel.n_periods], price=price)[0, row, :request.horizon]
    dates = extend_dates(panel.dates, panel.frequency, request.horizon)[-request.horizon:]
    q = np.maximum(np.sort(q, axis=1), 0.0)
    return {"product_id": request.product_id, "frequency": panel.frequency.name,
            "forecast": [{"date": str(d.date()), "p10": float(a), "p50": float(b), "p90": float(c)}
                         for d, (a, b, c) in zip(dates, q, strict=True)]}


SERVING = ServingSpec(
    request=ForecastRequest, response=ForecastResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.product_id, route="/forecast",
    example=lambda s: {"product_id": batch_values(s, "daily_sales", "product_id", 1)[0], "horizon": 7},
    unknown={"product_id": "P_DOES_NOT_EXIST", "horizon": 7},
    summary="Quantile demand forecast (P10/P50/P90) of a product for the next periods, optionally under a price plan.",
)

SPEC = ModelSpec(
    name="forecasting",
    params=ForecastingParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="mase",
    higher_is_better=False,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Global PyTorch quantile forecaster (P10/P50/P90) of units per product with price and calendar "
                "covariates.",
    serving=SERVING,
    resources={"gpu": True},
    data=FamilyData(("daily_sales",), kind="sales series, daily, weekly, monthly or quarterly",
                    note="horizon and seasonal period follow the inferred frequency"),
)
