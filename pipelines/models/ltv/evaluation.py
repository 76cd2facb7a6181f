"""Holdout evaluation of the registered LTV candidate against the baselines and the oracle, with calibration."""

from __future__ import annotations

import numpy as np

from pipelines.models.ltv.data import LABEL, LTVData
from pipelines.models.ltv.metrics import PRIMARY_METRIC, decile_calibration, mae, regression_metrics
from pipelines.models.ltv.model import inputs, units
from pipelines.models.ltv.params import LTVParams
from pipelines.spec import Evaluation


def evaluate(model, data: LTVData, params: LTVParams) -> Evaluation:
    """Metrics of the registered candidate on the holdout window, the baselines' per-customer results on the same
    customers (each refit on the whole training part, as the candidate was), the oracle, and calibration: predicted
    vs actual totals, overall and by decile of the expected spend."""
    from pipelines.models.ltv import plots
    from pipelines.models.ltv.baselines import BASELINES, candidate
    from pipelines.models.ltv.regressor import PRIOR_COLUMNS

    holdout = data.holdout
    y = holdout[LABEL].to_numpy(dtype="float64")
    frame = units(model, holdout)
    pred = frame["p"].to_numpy()
    X = inputs(model, holdout)
    level = model.level(X)
    expected = model.expected(X, level[0])
    cols = data.features + PRIOR_COLUMNS
    frames = {}
    for name in BASELINES:
        if name == model.candidate_:
            frames[name] = frame
            continue
        base = candidate(name, params, total_scale=model.validation_scale_)
        base.fit(data.refit[cols], data.refit[LABEL], population=data.population[data.features])
        frames[name] = units(base, holdout)
    metrics = regression_metrics(y, pred) | {
        "total_predicted": float(pred.sum()), "total_actual": float(y.sum()),
        "expected_calibration_ratio": float(expected.sum() / y.sum()) if y.sum() > 0 else 0.0,
        "expected_mae": float(np.mean(np.abs(expected - y))),
        "holdout_rows": float(len(y)), "train_rows": float(len(data.refit)),
        "holdout_mean_spend": float(y.mean()), "holdout_zero_share": float((y == 0).mean()),
        "eval_horizon_days": float(data.label_days), "horizon_days": float(data.windows.horizon_days),
        "total_scale": float(model.total_scale), "validation_scale": float(model.validation_scale_),
        "tau": float(level[1]), "serving_tau": float(model.level_[1]), "kappa": float(model.kappa_),
    }
    metrics |= {f"calibration_{k}": v for k, v in decile_calibration(y, expected).items()}
    for name, f in frames.items():
        base_metrics = regression_metrics(y, f["p"].to_numpy())
        metrics |= {f"baseline_{name}_{k}": v for k, v in base_metrics.items() if k != PRIMARY_METRIC}
    oracle = None
    curves = {"LTV model": pred, **{k: f["p"].to_numpy() for k, f in frames.items()}}
    if data.oracle is not None:
        oracle_metrics = regression_metrics(y, data.oracle.to_numpy())
        oracle = oracle_metrics[PRIMARY_METRIC]
        metrics |= {f"oracle_{k}": v for k, v in oracle_metrics.items() if k != PRIMARY_METRIC}
        curves["oracle"] = data.oracle.to_numpy()

    figures = {
        "gains.png": plots.gains(y, curves),
        "decile_calibration.png": plots.decile_calibration(y, {"LTV model (expected)": expected, **{
            k: curves[k] for k in curves if k in ("bgnbd_gamma_gamma", "oracle")}}),
        "predicted_vs_actual.png": plots.predicted_vs_actual(y, pred, holdout["btyd_spend"].to_numpy()),
        "bgnbd_holdout_purchases.png": plots.bgnbd_holdout(holdout, holdout["future_purchases"]),
    }
    importance = model.feature_importance()
    if not importance.empty:
        figures["feature_importance.png"] = plots.importance(importance)
    extra = {
        "candidate": model.candidate_,
        "holdout_cutoff": str(data.windows.holdout.date()),
        "validation_cutoff": str(data.windows.validation.date()),
        "train_cutoffs": ",".join(str(c.date()) for c in data.windows.train),
        "label_days": data.label_days,
        "features": ",".join(data.features),
        "tree_features": ",".join(getattr(model, "tree_features_", [])),
    }
    extra |= {f"prior_{k}": round(v, 6) for k, v in model.prior_.params_.items()}
    extra |= {f"baseline_{k}": round(v, 6) for k, v in data.btyd_params.items()}
    return Evaluation(
        metrics=metrics,
        baselines={name: mae(f) for name, f in frames.items()},
        oracle=oracle,
        figures=figures,
        extra_params=extra,
        units=frames,
        candidate=model.candidate_,
        selection=dict(model.selection_),
    )
