"""Baseline scorers on the training matrix: global popularity and item-item collaborative filtering."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from pipelines.models.recommendation.interactions import Interactions, popularity


def popularity_scores(train: Interactions, users: np.ndarray) -> np.ndarray:
    """The same popularity ranking (total training weight per product) for every user."""
    pop = popularity(train)
    return np.broadcast_to(pop, (len(users), len(pop))).copy()


def item_similarity(weights: sparse.csr_matrix) -> np.ndarray:
    """Cosine similarity between the item columns of ``log1p(weights)``, with a zero diagonal.

    ``log1p`` keeps a few heavy users (hundreds of views) from dominating every item vector.
    """
    x = weights.astype("float64").tocsc(copy=True)
    x.data = np.log1p(x.data)
    gram = (x.T @ x).toarray()
    norms = np.sqrt(np.diag(gram))
    with np.errstate(divide="ignore", invalid="ignore"):
        sim = gram / np.outer(norms, norms)
    sim = np.nan_to_num(sim, nan=0.0, posinf=0.0, neginf=0.0)
    np.fill_diagonal(sim, 0.0)
    return sim


def item_knn_scores(train: Interactions, users: np.ndarray) -> np.ndarray:
    """Item-item CF: ``score(u, j) = sum_i log1p(w_ui) * cos(i, j)``."""
    sim = item_similarity(train.weights)
    x = train.weights[users].astype("float64")
    x.data = np.log1p(x.data)
    return np.asarray(x @ sim)
