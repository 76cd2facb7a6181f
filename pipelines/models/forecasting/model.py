"""The forecasting model: select and fit the forecaster, forecast from any origin with a calibrated band, score."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipelines.models.forecasting.data import ForecastData
from pipelines.models.forecasting.metrics import QUANTILES
from pipelines.models.forecasting.panel import calendar_features, extend_dates
from pipelines.models.forecasting.params import ForecastingParams

log = logging.getLogger(__name__)


NETWORK = "network"
"""``meta["method"]`` of the family's own candidate (``"model"`` in the selection), the global network."""


@dataclass
class Forecaster:
    """A trained (or registry-loaded) forecaster: the selected candidate and what it needs to forecast.

    Attributes:
        net: A :class:`~pipelines.models.forecasting.net.ForecastNet`, or its ``torch.export`` module when loaded
            back; ``None`` when a statistical candidate won.
        meta: JSON-able ``method`` (``network`` or a name of
            :data:`~pipelines.models.forecasting.candidates.STATISTICAL`), ``product_ids`` (embedding rows 1..n),
            ``lags``, ``horizon``, ``frequency``, ``season``, ``n_calendar``, ``quantiles``, the conformal
            ``calibration`` shifts and the validation scores of every candidate (``selection``); logged as the
            MLflow model's metadata.
        losses: Training loss curve, one point per block of steps (empty when loaded or statistical).
    """

    net: Any
    meta: dict[str, Any]
    losses: list[float] = field(default_factory=list)

    @property
    def method(self) -> str:
        return str(self.meta.get("method", NETWORK))

    @property
    def candidate(self) -> str:
        """The selection's name of this forecaster: ``model`` for the network, else the baseline's name."""
        return "model" if self.method == NETWORK else self.method

    def product_index(self, product_ids: list[str]) -> np.ndarray:
        """Embedding row of each id (0 for products the model has not seen)."""
        known = {pid: i + 1 for i, pid in enumerate(self.meta["product_ids"])}
        return np.array([known.get(pid, 0) for pid in product_ids], dtype=np.int64)


CALIBRATION = 8
"""Most forecast origins the conformal band is calibrated on (all of the validation span when it has fewer)."""


def _meta(data: ForecastData, method: str) -> dict[str, Any]:
    return {"method": method, "product_ids": list(data.panel.product_ids), "lags": data.lags,
            "horizon": data.horizon, "frequency": data.panel.frequency.name, "season": data.season,
            "n_calendar": int(data.calendar.shape[1]), "quantiles": list(QUANTILES),
            "calibration": {"lower": 0.0, "upper": 0.0}, "selection": {}}


def _train_network(data: ForecastData, params: ForecastingParams, rows: np.ndarray, origins: np.ndarray,
                   end: int) -> Forecaster:
    """The global quantile network trained on windows ``(rows, origins)``, all ending at or before ``end``."""
    from pipelines.models.forecasting import net as fnet
    from pipelines.utils import pick_device

    panel = data.panel
    cfg = fnet.TrainConfig(hidden=params.hidden, embedding_dim=params.embedding_dim, dropout=params.dropout,
                           steps=params.steps, batch_size=params.batch_size, learning_rate=params.learning_rate,
                           weight_decay=params.weight_decay, seed=params.seed,
                           threads=params.threads)
    index = np.arange(1, len(panel.product_ids) + 1)
    # Cut the panel at ``end`` so nothing later can leak into training.
    result = fnet.train(panel.units[:, :end], panel.price[:, :end], data.calendar[:end], index, rows, origins,
                        data.lags, data.horizon, cfg, device=pick_device())
    log.info("forecasting: network trained on %d windows in %.1f s (final pinball %.4f)", len(rows),
             result.seconds, result.losses[-1])
    return Forecaster(net=result.net, meta=_meta(data, NETWORK), losses=result.losses)


def fit_network(data: ForecastData, params: ForecastingParams) -> Forecaster:
    """The network alone, trained on every window ending before the holdout (no selection, no calibration)."""
    return _train_network(data, params, data.train_rows, data.train_origins, data.train_end)


def _candidate_bounds(model: Forecaster, data: ForecastData, origins: list[int],
                      price: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uncalibrated lower, middle and upper forecasts ``(origins, products, horizon)`` of a candidate."""
    if model.method == NETWORK:
        q = _network_quantiles(model, data, origins, price)
        return q[..., 0], q[..., 1], q[..., 2]
    from pipelines.models.forecasting.candidates import point_forecasts

    point = point_forecasts(model.method, data.panel.units, origins, int(model.meta["horizon"]),
                            int(model.meta["season"]))
    return point, point, point


def fit(data: ForecastData, params: ForecastingParams) -> Forecaster:
    """Select the forecaster on the validation backtest, calibrate its band there, refit it for the holdout.

    Candidates: the statistical baselines (seasonal naive, Holt-Winters, ETS) and the network (when the history
    before the validation backtest holds a training window). Each forecasts the validation windows from the history
    before them; :func:`pipelines.promotion.select_candidate` takes the lowest MASE. The winner's P10/P90 are
    calibrated on its residuals from up to :data:`CALIBRATION` origins of the validation span (the validation network
    forecasts them all out of sample; :mod:`~pipelines.models.forecasting.conformal`), and a winning network
    is trained again on every window before the holdout. The holdout is never read.
    """
    from pipelines.models.forecasting import conformal
    from pipelines.models.forecasting.candidates import STATISTICAL
    from pipelines.models.forecasting.metrics import mase
    from pipelines.promotion import select_candidate

    val = data.validation
    candidates = {name: Forecaster(net=None, meta=_meta(data, name)) for name in STATISTICAL}
    if data.val_train_rows is not None and len(data.val_train_rows):
        candidates["model"] = _train_network(data, params, data.val_train_rows, data.val_train_origins,
                                             val.origins[0])
    bounds = {name: _candidate_bounds(c, data, val.origins) for name, c in candidates.items()}
    scores = {name: mase(b[1], val.actual, val.scale) for name, b in bounds.items()}
    winner = select_candidate(scores, higher_is_better=False)
    log.info("forecasting: validation MASE %s -> %s", {k: round(v, 4) for k, v in scores.items()}, winner)
    # Calibrate on every origin of the validation span (not only its few selection windows), at most CALIBRATION.
    cal = sorted(set(np.linspace(val.origins[0], val.origins[-1], CALIBRATION).round().astype(int).tolist()))
    lower, _, upper = _candidate_bounds(candidates[winner], data, cal)
    model = fit_network(data, params) if winner == "model" else candidates[winner]
    window = np.array(cal)[:, None] + np.arange(data.horizon)[None, :]
    scale = np.stack([conformal.band_scale(data.panel.units, o, data.season) for o in cal])
    model.meta["calibration"] = conformal.calibrate(lower, upper, data.panel.units[:, window].transpose(1, 0, 2),
                                                    scale)
    model.meta["selection"] = {k: float(v) for k, v in scores.items()}
    return model


def _network_quantiles(model: Forecaster, data: ForecastData, origins: list[int],
                       price: np.ndarray | None = None) -> np.ndarray:
    """The network's raw ``(origins, products, horizon, 3)`` quantiles."""
    from pipelines.models.forecasting.net import pack_inputs, predict

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


def forecast(model: Forecaster, data: ForecastData, origins: list[int] | None = None,
             price: np.ndarray | None = None) -> np.ndarray:
    """Calibrated quantile forecasts ``(origins, products, horizon, 3)`` (P10, P50, P90) from each origin.

    Args:
        model: A trained or loaded :class:`Forecaster`.
        data: The data set (history up to each origin is the input).
        origins: Forecast origins (default: the holdout origins); ``panel.n_periods`` forecasts past the data.
        price: Price panel to use instead of the realised one (what-if scenarios; the network only).

    Raises:
        ValueError: When the model was trained on another sampling frequency, or an origin has less history
            than the model's lag window.
    """
    from pipelines.models.forecasting import conformal
    if model.meta["frequency"] != data.panel.frequency.name:
        raise ValueError(f"model forecasts {model.meta['frequency']} data, the data set is "
                         f"{data.panel.frequency.name}")
    origins = data.origins if origins is None else origins
    lower, mid, upper = _candidate_bounds(model, data, origins, price)
    season = int(model.meta["season"])
    scale = np.stack([conformal.band_scale(data.panel.units, o, season) for o in origins])
    return conformal.band(lower, mid, upper, scale, model.meta.get("calibration", {"lower": 0.0, "upper": 0.0}))


def history_data(panel, meta: dict[str, Any]) -> ForecastData:
    """A data set over a sales history for forecasts from its end (serving, the pyfunc model): no backtest."""
    empty = np.zeros((0,), dtype=np.int64)
    n = len(panel.product_ids)
    return ForecastData(panel=panel, calendar=calendar_features(panel.dates), horizon=int(meta["horizon"]),
                        lags=int(meta["lags"]), season=int(meta["season"]), origins=[panel.n_periods],
                        actual=np.zeros((1, n, 0)), scale=np.ones((1, n)), train_rows=empty, train_origins=empty)


def _comparable(model: Forecaster, data: ForecastData) -> int:
    """Horizon steps on which a model can be compared with the data set's backtest."""
    steps = min(int(model.meta["horizon"]), data.horizon)
    if steps != data.horizon:
        log.warning("model horizon %s differs from the data set's %d: comparing the first %d steps",
                    model.meta["horizon"], data.horizon, steps)
    return steps


def holdout(model: Forecaster, data: ForecastData) -> pd.DataFrame:
    """Per-series holdout results (the gate's units): ``mase`` (mean over origins of the scaled MAE) and
    ``coverage`` (share of actuals inside P10-P90), indexed by product id. A model that cannot forecast this
    frequency scores ``inf`` on every series."""
    index = pd.Index(data.panel.product_ids, name="product_id")
    if model.meta["frequency"] != data.panel.frequency.name:
        log.warning("model was trained on %s data and cannot forecast %s sales: scored as inf",
                    model.meta["frequency"], data.panel.frequency.name)
        return pd.DataFrame({"mase": np.inf, "coverage": np.nan}, index=index)
    steps = _comparable(model, data)
    q = forecast(model, data)[..., :steps, :]
    return unit_frame(q, data.actual[..., :steps], data.scale, index)


def unit_frame(q: np.ndarray, actual: np.ndarray, scale: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Per-series frame of quantile (``(..., 3)``) or point forecasts against ``actual``."""
    from pipelines.models.forecasting.metrics import series_mase

    point = q[..., 1] if q.ndim == actual.ndim + 1 else q
    frame = pd.DataFrame({"mase": series_mase(point, actual, scale)}, index=index)
    if q.ndim == actual.ndim + 1:
        inside = (actual >= q[..., 0]) & (actual <= q[..., 2])
        frame["coverage"] = inside.mean(axis=(0, 2))
    return frame


def metric(frame: pd.DataFrame) -> float:
    """The primary metric of a per-series frame (or any resample of its rows): mean MASE over its series."""
    from pipelines.models.forecasting.metrics import mean_mase

    return mean_mase(frame["mase"].to_numpy())


def score(model: Forecaster, data: ForecastData) -> float:
    """Holdout MASE of the model's P50 (mean over series); ``inf`` if it cannot forecast this frequency."""
    return metric(holdout(model, data))


def implied_elasticity(model: Forecaster, data: ForecastData, change: float = 0.9,
                       origin: int | None = None) -> np.ndarray:
    """Price elasticity the model implies per product: ``log(P50 ratio) / log(price ratio)``.

    Prices over the whole horizon from ``origin`` (default: the last backtest origin) are multiplied by
    ``change`` and the summed P50 forecasts compared. Works on trained and registry-loaded models alike. The
    statistical candidates do not read prices: 0 for every product.
    """
    if model.method != NETWORK:
        return np.zeros(len(data.panel.product_ids))
    origin = data.origins[-1] if origin is None else origin
    horizon = int(model.meta["horizon"])
    price = data.panel.price.copy()
    price[:, origin:origin + horizon] *= change
    base = forecast(model, data, [origin])[0, :, :, 1].sum(axis=1)
    moved = forecast(model, data, [origin], price=price)[0, :, :, 1].sum(axis=1)
    return np.log(moved / base) / np.log(change)
