"""The pricing family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.pricing.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.pricing.evaluation import evaluate
from pipelines.models.pricing.model import fit, load_model, log_model, score
from pipelines.models.pricing.params import PricingParams
from pipelines.models.pricing.scoring import holdout, profit_ratio
from pipelines.models.pricing.serving import SERVING
from pipelines.models.pricing.tuning import search_space
from pipelines.spec import ModelSpec

SPEC = ModelSpec(
    name="pricing",
    params=PricingParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="profit_ratio_to_oracle",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="DQN dynamic pricing within guardrails, trained in an inventory-aware simulator fitted on history.",
    serving=SERVING,
    data=NEEDS,
    holdout=holdout,
    metric=profit_ratio,
    search_space=search_space,
)
