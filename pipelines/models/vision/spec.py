"""The vision family's :class:`~pipelines.spec.ModelSpec` (re-exported by the package)."""

from __future__ import annotations

from pipelines.models.vision.data import FEATURE_SERVICE, NEEDS, prepare
from pipelines.models.vision.evaluation import evaluate
from pipelines.models.vision.metrics import frame_metric, holdout_frame
from pipelines.models.vision.model import fit, load_model, log_model, score
from pipelines.models.vision.params import VisionParams
from pipelines.models.vision.serving import SERVING
from pipelines.models.vision.tuning import search_space
from pipelines.spec import ModelSpec

SPEC = ModelSpec(
    name="vision",
    params=VisionParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="macro_f1",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Small residual CNN on product images (or a baseline that beats it on validation): category "
                "classifier whose embedding powers visual similar-item search.",
    serving=SERVING,
    resources={"gpu": True},
    data=NEEDS,
    holdout=holdout_frame,
    metric=frame_metric,
    search_space=search_space,
)
