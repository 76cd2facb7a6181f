"""Holdout backtest of the selected forecaster against the baselines and the oracle, with the same metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.models.forecasting.data import ForecastData
from pipelines.models.forecasting.model import NETWORK, Forecaster, forecast, implied_elasticity, unit_frame
from pipelines.models.forecasting.params import ForecastingParams
from pipelines.spec import Evaluation


def evaluate(model: Forecaster, data: ForecastData, params: ForecastingParams) -> Evaluation:
    """Backtest the registered (selected) model, the baselines and the oracle on the holdout; draw the diagnostics.

    ``units`` holds every baseline's per-series frame for the gate; ``selection`` the validation MASE of every
    candidate and ``candidate`` the winner. Coverage of the calibrated P10-P90 band is a run metric.
    """
    from pipelines.models.forecasting import metrics as m
    from pipelines.models.forecasting import plots
    from pipelines.models.forecasting.baselines import baseline_forecasts
    from pipelines.models.forecasting.model import metric
    from pipelines.models.forecasting.oracle import poisson_quantiles

    y, scale = data.actual, data.scale
    index = pd.Index(data.panel.product_ids, name="product_id")
    q = forecast(model, data)
    p50 = q[..., 1]
    frame = unit_frame(q, y, scale, index)
    metrics: dict[str, float] = {
        "mase": metric(frame), "wape": m.wape(p50, y), "quantile_loss": m.quantile_loss(q, y),
        "coverage_p10_p90": m.coverage(q, y),
        "bias": float((p50 - y).sum() / max(y.sum(), 1e-9)),
        **{f"mase_origin_{k + 1}": m.mase(p50[k:k + 1], y[k:k + 1], scale[k:k + 1]) for k in range(len(data.origins))},
        "n_series": float(y.shape[1]), "n_origins": float(len(data.origins)), "horizon": float(data.horizon),
        "train_windows": float(len(data.train_rows)),
        "calibration_lower": float(model.meta["calibration"]["lower"]),
        "calibration_upper": float(model.meta["calibration"]["upper"]),
    }
    bases = baseline_forecasts(data.panel.units, data.origins, data.horizon, data.season)
    baselines, units = {}, {}
    for name, point in bases.items():
        units[name] = unit_frame(point, y, scale, index)
        baselines[name] = metric(units[name])
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

    figures = {
        "forecasts.png": plots.forecasts(data, q, bases["seasonal_naive"], data.oracle_mean),
        "error_by_horizon.png": plots.error_by_horizon(curves, data.panel.frequency.name),
        "quantile_calibration.png": plots.calibration(q, oracle_q, y),
    }
    if model.method == NETWORK:
        elasticity = implied_elasticity(model, data)
        metrics["implied_elasticity_median"] = float(np.median(elasticity))
        if data.true_elasticity is not None:
            metrics["elasticity_mae"] = float(np.mean(np.abs(elasticity - data.true_elasticity)))
            metrics["elasticity_corr"] = float(np.corrcoef(elasticity, data.true_elasticity)[0, 1])
        figures["price_elasticity.png"] = plots.elasticity(elasticity, data.true_elasticity)
    if model.losses:
        figures["training_loss.png"] = plots.losses(model.losses)
    dates = data.panel.dates
    val = data.validation
    return Evaluation(
        metrics=metrics, baselines=baselines, oracle=oracle, figures=figures, units=units,
        candidate=model.candidate, selection=dict(model.meta.get("selection", {})),
        extra_params={
            "frequency": data.panel.frequency.name, "season": data.season, "horizon_steps": data.horizon,
            "lag_steps": data.lags, "n_products": len(data.panel.product_ids), "candidate": model.candidate,
            "train_end": str(dates[data.train_end - 1].date()),
            "backtest_origins": ",".join(str(dates[o].date()) for o in data.origins),
            "validation_origins": "" if val is None else ",".join(str(dates[o].date()) for o in val.origins),
        },
    )
