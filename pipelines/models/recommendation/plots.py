"""Figures of a recommendation evaluation (holdout)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.models.recommendation.data import RecData
from pipelines.models.recommendation.model import K


def recall_at_k(rankings: dict[str, np.ndarray], relevant: list[np.ndarray], k_max: int):
    """Recall@K for K = 1..k_max of each ranking (model, baselines, oracle)."""
    import matplotlib.pyplot as plt

    from pipelines.models.recommendation.metrics import recall_curve

    ks = np.arange(1, k_max + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in rankings.items():
        ax.plot(ks, recall_curve(r, relevant, k_max), marker=".", label=name)
    ax.axvline(K, color="k", ls=":", lw=1)
    ax.set(xlabel="K", ylabel="recall@K", title="Recall@K on the holdout (novel purchases)")
    ax.legend()
    return fig


def training_loss(train_loss: list[float], loss: str):
    """Training loss per epoch."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(train_loss) + 1), train_loss)
    ax.set(xlabel="epoch", ylabel=f"{loss} loss (train)", title="Training loss")
    return fig


def item_embeddings(model, data: RecData):
    """Item vectors projected on their first two principal components, coloured by category."""
    import matplotlib.pyplot as plt

    v = model.item_vectors()[:, :-1].astype("float64")
    v = v - v.mean(axis=0)
    coords = v @ np.linalg.svd(v, full_matrices=False)[2][:2].T if len(v) > 1 else np.zeros((len(v), 2))
    fig, ax = plt.subplots(figsize=(6, 5))
    category = pd.Series(data.item_category, index=data.train.item_ids).reindex(model.item_ids).fillna("unknown")
    for cat in sorted(category.unique()):
        mask = (category == cat).to_numpy()
        ax.scatter(coords[mask, 0], coords[mask, 1], s=20, label=cat)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="Item vectors by category")
    ax.legend(fontsize=7, ncol=2)
    return fig


def comparison(results: dict[str, dict[str, float]]):
    """Recall@K and NDCG@K of the model, the baselines and the oracle side by side."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(results)
    x = np.arange(len(names))
    for offset, m in ((-0.2, f"recall_at_{K}"), (0.2, f"ndcg_at_{K}")):
        ax.bar(x + offset, [results[n][m] for n in names], width=0.4, label=m)
    ax.set_xticks(x, names)
    ax.set(title="Model vs baselines vs oracle (holdout)")
    ax.legend()
    return fig
