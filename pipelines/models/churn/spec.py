"""The churn family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.churn.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.churn.evaluation import evaluate
from pipelines.models.churn.model import contributions, fit, holdout, load_model, log_model, metric, score
from pipelines.models.churn.params import ChurnParams
from pipelines.models.churn.serving import SERVING
from pipelines.models.churn.tuning import search_space
from pipelines.spec import ModelSpec

SPEC = ModelSpec(
    name="churn",
    params=ChurnParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="auc",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Churn classifier (XGBoost or logistic regression, picked on validation) on RFM, activity and "
                "category-mix features and the customer attributes.",
    serving=SERVING,
    data=NEEDS,
    holdout=holdout,
    metric=metric,
    contributions=contributions,
    search_space=search_space,
)
