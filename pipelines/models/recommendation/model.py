"""The recommendation model: select the candidate on validation, fit it (evaluated and served), rank the holdout,
per-customer holdout results for the gate, MLflow."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.models.recommendation.data import RecData
from pipelines.models.recommendation.params import RecommendationParams
from pipelines.utils import pinned_requirements

if TYPE_CHECKING:
    from pipelines.models.recommendation.mf import MFRecommender

log = logging.getLogger(__name__)

K = 10
"""List length of the metrics (the primary metric is NDCG@10)."""


class RecModel:
    """The registered recommender: the winning candidate fitted twice.

    ``evaluated`` is fitted on the training part only, so the holdout (and the gate, after loading it back) scores
    it honestly; ``served`` is the same candidate with the same settings refitted on every interaction (holdout
    included), so serving knows every customer and everything they have seen. ``recommend`` answers from
    ``served``.
    """

    def __init__(self, evaluated: MFRecommender, served: MFRecommender, candidate: str = "model",
                 selection: dict[str, float] | None = None):
        self.evaluated, self.served, self.candidate = evaluated, served, candidate
        self.selection = dict(selection or {})

    @property
    def item_ids(self) -> np.ndarray:
        return self.evaluated.item_ids

    def score_customers(self, customer_ids) -> np.ndarray:
        """Exact scores of the evaluated model (what the holdout is ranked by)."""
        return self.evaluated.score_customers(customer_ids)

    def recommend(self, customer_id: str, k: int = 10, recent_products: list[str] | None = None,
                  exclude: list[str] | None = None):
        """Top-``k`` from the served (refitted) model; see :meth:`MFRecommender.recommend`."""
        return self.served.recommend(customer_id, k, recent_products=recent_products, exclude=exclude)


def _validation(data: RecData, params: RecommendationParams):
    """The validation split: the holdout's protocol applied again to the training part (never the holdout)."""
    from pipelines.models.recommendation.split import split_log

    s = data.split
    return split_log(s.events, s.orders, data.train.item_ids, params.weights(), s.cutoff, protocol=params.split,
                     test_days=params.test_days, test_fraction=params.test_fraction, seed=params.seed + 1,
                     half_life_days=params.half_life_days or None)


@dataclass
class Selection:
    """Outcome of the validation split: the winner, how it is fitted, and every score that chose it."""

    winner: str
    variant: str
    ease_l2: float | None
    scores: dict[str, float]
    """Validation NDCG@10 of ``model`` (its best variant), each baseline, and each variant (``model_<variant>``)."""


def select(data: RecData, params: RecommendationParams) -> Selection:
    """Score every candidate on the validation split and pick the winner; the model's variant (EASE or MF) and
    EASE's L2 are chosen there too."""
    from pipelines.models.recommendation import ease
    from pipelines.models.recommendation.candidates import BASELINES, fit_candidate
    from pipelines.models.recommendation.metrics import ndcg_at_k, top_k
    from pipelines.promotion import select_candidate

    variants = params.variants(data.train.n_items)
    val = _validation(data, params)
    if len(val.holdout.users) == 0 or val.train.n_users == 0:
        log.warning("recommendation: the validation split has no positive to score; the model (%s) is kept "
                    "without selection", variants[0])
        return Selection("model", variants[0], params.ease_l2, {})

    def val_score(name: str, variant: str = "mf", l2: float | None = None) -> float:
        model = fit_candidate(name, val.train, params, data.item_features, variant, l2)
        users = val.train.user_ids[val.holdout.users]
        ranked = top_k(model.score_customers(users), K, val.train.bought[val.holdout.users])
        return ndcg_at_k(ranked, val.holdout.relevant, K)

    scores = {name: val_score(name) for name in BASELINES}
    variant_scores, l2 = {}, None
    for variant in variants:
        if variant == "ease":
            grid = (params.ease_l2,) if params.ease_l2 else ease.L2_GRID
            tried = {g: val_score("model", "ease", g) for g in grid}
            l2 = max(tried, key=tried.get)
            log.info("recommendation: EASE L2 on validation %s -> %s", tried, l2)
            variant_scores["ease"] = tried[l2]
        else:
            variant_scores[variant] = val_score("model", variant)
    variant = max(variant_scores, key=variant_scores.get)
    scores["model"] = variant_scores[variant]
    winner = select_candidate(scores, higher_is_better=True)
    scores.update({f"model_{v}": s for v, s in variant_scores.items()})
    return Selection(winner, variant, l2, scores)


def fit(data: RecData, params: RecommendationParams) -> RecModel:
    """Select the candidate on the validation split, then fit the winner on the training part (evaluated) and on
    every interaction (served), each with its HNSW index."""
    from pipelines.models.recommendation.candidates import fit_candidate
    from pipelines.models.recommendation.interactions import build_interactions

    sel = select(data, params)
    evaluated = fit_candidate(sel.winner, data.train, params, data.item_features, sel.variant, sel.ease_l2)
    full = build_interactions(data.events, data.orders, data.train.item_ids, data.end, params.weights(),
                              params.half_life_days or None)
    served = fit_candidate(sel.winner, full, params, data.item_features, sel.variant, sel.ease_l2)
    log.info("recommendation: candidate %s (%s) won the validation split %s", sel.winner, evaluated.kind,
             sel.scores)
    return RecModel(evaluated, served, sel.winner, sel.scores)


def rank_for_holdout(scores: np.ndarray, score_items: np.ndarray, data: RecData, k: int = K) -> np.ndarray:
    """Top-``k`` of ``data``'s item indices per holdout customer, excluding what each bought before the cutoff.

    Args:
        scores: ``(holdout customers, len(score_items))`` scores, higher first.
        score_items: Product id of each score column (a model's catalogue may differ from the data's).
        data: The prepared data set.
        k: List length.
    """
    from pipelines.models.recommendation.metrics import top_k

    full = np.full((len(scores), data.train.n_items), -np.inf)
    col = pd.Index(data.train.item_ids).get_indexer(np.asarray(score_items, dtype=str))
    full[:, col[col >= 0]] = scores[:, col >= 0]
    return top_k(full, k, data.train.bought[data.holdout.users])


def model_ranking(model, data: RecData, k: int = K) -> np.ndarray:
    """Exact (brute-force) top-``k`` of ``model`` for the holdout customers, mapped by customer and product id."""
    return rank_for_holdout(model.score_customers(data.eval_customers), model.item_ids, data, k)


def holdout(model, data: RecData) -> pd.DataFrame:
    """Per holdout customer (index ``customer_id``): NDCG@10 and recall@10 of ``model``'s exact ranking."""
    from pipelines.models.recommendation.metrics import per_user

    return per_user(model_ranking(model, data), data.holdout.relevant, data.eval_customers, K)


def metric(frame: pd.DataFrame) -> float:
    """The primary metric, NDCG@10: the mean over the frame's customers (any resample of them)."""
    return float(frame[f"ndcg_at_{K}"].mean()) if len(frame) else float("nan")


def score(model, data: RecData) -> float:
    """NDCG@10 of any recommender of this family (matched by customer and product id) on the holdout."""
    return metric(holdout(model, data))


def _requirements() -> list[str]:
    """Runtime requirements (inference would miss the lazily imported faiss)."""
    return pinned_requirements("mlflow", "torch", "numpy", "scipy", "faiss-cpu")


EVALUATED = "evaluated_"
"""Prefix of the evaluated model's files beside the served one's."""


def log_model(model: RecModel, data: RecData):
    """Log the served model's weights as MLflow's safe ``pt2`` (torch.export) PyTorch flavor; everything else
    (the served model's state and index, the evaluated model's weights, state and index) as pickle-free extra
    files.

    The exported program scores customer rows against the catalogue (``(n,) int64 -> (n, items) float32``), so
    the pyfunc flavor serves without ShopFlow's code; :func:`load_model` rebuilds the full :class:`RecModel` (with
    ``recommend``) from the same artifact.
    """
    import json
    import tempfile
    from pathlib import Path

    import mlflow
    import torch
    from mlflow.models import infer_signature

    served = model.served
    example = np.arange(min(3, len(served.user_ids)), dtype=np.int64)
    with torch.no_grad():
        output = served(torch.from_numpy(example)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        files = served.save_state(Path(tmp)) + model.evaluated.save_state(Path(tmp), EVALUATED)
        weights = Path(tmp) / f"{EVALUATED}weights.npz"
        np.savez(weights, **{k: v.detach().cpu().numpy() for k, v in model.evaluated.state_dict().items()})
        meta = Path(tmp) / "selection.json"
        meta.write_text(json.dumps({"candidate": model.candidate, "selection": model.selection}))
        return mlflow.pytorch.log_model(served, name="model", signature=infer_signature(example, output),
                                        input_example=example, serialization_format="pt2",
                                        extra_files=[str(f) for f in [*files, weights, meta]],
                                        pip_requirements=_requirements())


def load_model(uri: str) -> RecModel:
    """The logged recommender: the served and the evaluated model, each with its id maps, exclusions,
    popularity fallback and ANN index."""
    import json
    from pathlib import Path

    import mlflow
    import torch

    from pipelines.models.recommendation.mf import MFRecommender

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    extra = local / "extra_files"
    exported = mlflow.pytorch.load_model(str(local), map_location="cpu")
    served = MFRecommender.from_state(exported.state_dict(), extra)
    with np.load(extra / f"{EVALUATED}weights.npz", allow_pickle=False) as z:
        weights = {k: torch.from_numpy(z[k]) for k in z.files}
    evaluated = MFRecommender.from_state(weights, extra, EVALUATED)
    meta = json.loads((extra / "selection.json").read_text())
    return RecModel(evaluated, served, meta["candidate"], meta["selection"])
