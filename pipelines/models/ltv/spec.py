"""The LTV family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.ltv.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.ltv.evaluation import evaluate
from pipelines.models.ltv.metrics import PRIMARY_METRIC, mae
from pipelines.models.ltv.model import fit, holdout_units, load_model, log_model, score
from pipelines.models.ltv.params import LTVParams
from pipelines.models.ltv.serving import SERVING, contributions
from pipelines.models.ltv.tuning import search_space
from pipelines.spec import ModelSpec

SPEC = ModelSpec(
    name="ltv",
    params=LTVParams,
    feature_service=FEATURE_SERVICE,
    primary_metric=PRIMARY_METRIC,
    higher_is_better=False,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Spend over the next horizon_days: XGBoost Tweedie correction of a BG/NBD + Gamma-Gamma prior "
                "(RFM, activity and category-mix features), calibrated totals, chosen against the baselines on a "
                "validation window.",
    serving=SERVING,
    contributions=contributions,
    data=NEEDS,
    holdout=holdout_units,
    metric=mae,
    search_space=search_space,
)
