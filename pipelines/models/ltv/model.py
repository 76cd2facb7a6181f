"""The LTV model: choose among the candidates on the validation window, refit the winner, predict, MLflow flavor."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from pipelines.models.ltv.data import LABEL, LTVData
from pipelines.models.ltv.metrics import mae
from pipelines.models.ltv.params import LTVParams
from pipelines.utils import pinned_requirements

log = logging.getLogger(__name__)

SCALE_BOUNDS = (0.67, 1.5)
"""Bounds of the total scale learnt on the validation window."""


def inputs(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns ``model`` reads from a data-set frame: its inputs plus the prior as of the frame's cutoff."""
    from pipelines.models.ltv.regressor import PRIOR_COLUMNS

    return frame[list(model.feature_names_in_) + [c for c in PRIOR_COLUMNS if c in frame.columns]]


def units(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Per-customer actual (``y``) and served (``p``) spend of ``model`` on the labelled rows of one cutoff.

    The model's level (total and quantile level, :meth:`LTVRegressor.level`) is set on these customers from their
    inputs only, as it is set on every customer at the end of the data for serving.
    """
    X = inputs(model, frame)
    return pd.DataFrame({"y": frame[LABEL].to_numpy(dtype="float64"), "p": model.predict(X, model.level(X))},
                        index=pd.Index(frame["customer_id"].astype(str), name="customer_id"))


def fit(data: LTVData, params: LTVParams):
    """Fit every candidate on the training windows, pick the best on the validation window (MAE), refit it on the
    whole training part (every window ending by the holdout cutoff) with its prior and quantile level set on every
    customer at the end of the data. The returned model records ``candidate_``, ``selection_`` and
    ``validation_scale_`` (the validation window's actual / BG/NBD-predicted total, the model's ``total_scale``)."""
    from pipelines.models.ltv.baselines import CANDIDATES, candidate
    from pipelines.promotion import select_candidate

    from pipelines.models.ltv.regressor import PRIOR_COLUMNS

    cols = data.features + PRIOR_COLUMNS
    scores: dict[str, float] = {}
    points: dict[str, str] = {}
    for name in CANDIDATES:  # baselines first: a tie keeps the simpler one
        est = candidate(name, params).fit(data.train[cols], data.train[LABEL])
        options = {}
        for point in (("mae", "mean") if params.point == "auto" else (params.point,)):
            options[point] = mae(units(est.set_params(point=point), data.validation))
        points[name] = min(options, key=options.get)
        scores[name] = options[points[name]]
    # The prior's own drift one window ahead (it is fitted without labels, so nothing is counted twice), shrunk
    # halfway towards none in log terms: one window is a noisy estimate of it.
    prior = np.nansum(data.validation["btyd_spend"].to_numpy(dtype="float64"))
    actual = data.validation[LABEL].to_numpy(dtype="float64").sum()
    drift = actual / prior if params.calibrate_total and prior > 0 < actual else 1.0
    scale = float(np.clip(np.sqrt(drift), *SCALE_BOUNDS))
    winner = select_candidate(scores, higher_is_better=False)
    refit = data.refit
    model = candidate(winner, params, total_scale=scale).set_params(point=points[winner])
    model.fit(refit[cols], refit[LABEL], population=data.population[data.features])
    model.candidate_, model.selection_, model.validation_scale_ = winner, scores, scale
    log.info("ltv selection on the validation window (MAE): %s; registered candidate %s",
             ", ".join(f"{k} {v:.3f}" for k, v in scores.items()), winner)
    return model


def predict(model, frame: pd.DataFrame) -> np.ndarray:
    """Served spend of ``model`` for rows of ``frame`` (at the model's own quantile level)."""
    return model.predict(inputs(model, frame))


def holdout_units(model, data: LTVData) -> pd.DataFrame:
    """``ModelSpec.holdout``: the model's per-customer results on the holdout window."""
    return units(model, data.holdout)


def score(model, data: LTVData) -> float:
    return mae(holdout_units(model, data))


def log_model(model, data: LTVData):
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.models.ltv.regressor import SKOPS_TRUSTED_TYPES

    example = data.population[list(model.feature_names_in_)].head(5)
    signature = infer_signature(example, model.predict(example))
    # skops, not pickle: loading only instantiates the listed types instead of running arbitrary code.
    return mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=example,
                                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                                    skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=_pip_requirements())


def _pip_requirements() -> list[str]:
    """The model's classes live in ``pipelines.models.ltv``, i.e. the ``shopflow`` distribution itself."""
    return pinned_requirements("mlflow", "scikit-learn", "xgboost", "scipy", "numpy", "pandas", "skops", "shopflow")


def load_model(uri: str):
    import mlflow

    return mlflow.sklearn.load_model(uri)
