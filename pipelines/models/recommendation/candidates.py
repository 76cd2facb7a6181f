"""The candidates of the recommendation family (its model and its baselines), each fitted into one servable form.

Every candidate is a linear recommender ``score(u, i) = <user vector, item vector>`` held by an
:class:`~pipelines.models.recommendation.mf.MFRecommender`, so whichever wins the validation split is logged,
loaded, indexed (HNSW) and served by the same code:

- ``model``: EASE (customer vector = their ``log1p`` weights, item vector = a column of ``B``) or the hybrid
  matrix factorisation, by ``algorithm``;
- ``item_knn``: item-item cosine CF (customer vector = ``log1p`` weights, item vector = a similarity column);
- ``popularity``: the same ranking for everyone (a one-dimensional vector).
"""

from __future__ import annotations

import numpy as np

from pipelines.models.recommendation.interactions import Interactions, popularity
from pipelines.models.recommendation.mf import MFRecommender
from pipelines.models.recommendation.params import RecommendationParams

BASELINES = ("popularity", "item_knn")
"""Baselines of the family, in the order the selection prefers them on a tie (simplest first)."""


def _log_weights(train: Interactions) -> np.ndarray:
    x = train.weights.astype("float64")
    x.data = np.log1p(x.data)
    return x.toarray()


def fit_candidate(name: str, train: Interactions, params: RecommendationParams, item_features: np.ndarray,
                  variant: str = "mf", ease_l2: float | None = None) -> MFRecommender:
    """Fit candidate ``name`` (``model`` or a baseline) on ``train`` and build its ANN index.

    Args:
        name: ``model``, ``popularity`` or ``item_knn``.
        train: The interactions to fit on (the customers and the exclusions of the result).
        params: The family's params (the model's settings and the index's).
        item_features: Side features of ``train``'s catalogue (hybrid MF only).
        variant: The model's variant, ``ease`` or ``mf`` (``name == "model"`` only).
        ease_l2: EASE's L2 (multiple of the mean Gram diagonal); ``params.ease_l2`` or 5 when ``None``.
    """
    from pipelines.models.recommendation import baselines, ease

    pop = popularity(train)
    if name == "popularity":
        model = MFRecommender.from_vectors("popularity", train.user_ids, train.item_ids,
                                           np.ones((train.n_users, 1)), pop[:, None], train.bought, pop, "none")
    elif name == "item_knn":
        model = MFRecommender.from_vectors("item_knn", train.user_ids, train.item_ids, _log_weights(train),
                                           baselines.item_similarity(train.weights), train.bought, pop)
    elif name != "model":
        raise ValueError(f"unknown recommendation candidate {name!r}")
    elif variant == "ease":
        l2 = ease_l2 or params.ease_l2 or 5.0
        b = ease.fit_ease(train.weights, l2)
        model = MFRecommender.from_vectors("ease", train.user_ids, train.item_ids, _log_weights(train), b.T,
                                           train.bought, pop)
        model.ease_l2 = l2
    else:
        model = _fit_mf(train, params, item_features)
    model.build_index(hnsw_m=params.hnsw_m, ef_search=params.ef_search)
    return model


def _fit_mf(train: Interactions, params: RecommendationParams, item_features: np.ndarray) -> MFRecommender:
    """The hybrid matrix factorisation (PyTorch) on ``train``."""
    from pipelines.models.recommendation.mf import train as train_mf
    from pipelines.utils import pick_device

    model = MFRecommender(train.user_ids, train.item_ids, params.dim, train.bought, popularity(train),
                          item_features if params.item_features else None, seed=params.seed)
    model.train_loss = train_mf(model, train.weights, params.train_config(pick_device()))
    return model
