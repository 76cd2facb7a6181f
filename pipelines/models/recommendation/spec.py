"""The recommendation family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.recommendation.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.recommendation.evaluation import evaluate
from pipelines.models.recommendation.model import fit, holdout, load_model, log_model, metric, score
from pipelines.models.recommendation.params import RecommendationParams
from pipelines.models.recommendation.serving import SERVING
from pipelines.models.recommendation.tuning import search_space
from pipelines.spec import ModelSpec

SPEC = ModelSpec(
    name="recommendation",
    params=RecommendationParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="ndcg_at_10",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="EASE or hybrid matrix factorisation on implicit feedback or ratings, chosen against popularity and "
                "item-kNN on a validation split, served from a faiss HNSW index.",
    serving=SERVING,
    resources={"gpu": True},
    data=NEEDS,
    holdout=holdout,
    metric=metric,
    search_space=search_space,
)
