"""The forecasting family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.forecasting.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.forecasting.evaluation import evaluate
from pipelines.models.forecasting.flavor import load_model, log_model
from pipelines.models.forecasting.model import fit, holdout, metric, score
from pipelines.models.forecasting.params import ForecastingParams
from pipelines.models.forecasting.serving import SERVING
from pipelines.models.forecasting.tuning import search_space
from pipelines.spec import ModelSpec

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
    description="Quantile forecaster (P10/P50/P90) of units per product: a global PyTorch network with price and "
                "calendar covariates, or the exponential-smoothing / seasonal-naive baseline that beats it on the "
                "validation backtest; conformal bands.",
    serving=SERVING,
    resources={"gpu": True},
    data=NEEDS,
    holdout=holdout,
    metric=metric,
    search_space=search_space,
)
