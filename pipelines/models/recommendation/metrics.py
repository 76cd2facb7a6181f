"""Top-K ranking with exclusions and the ranking metrics of the recommendation family."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse


def top_k(scores: np.ndarray, k: int, exclude: sparse.csr_matrix | None = None) -> np.ndarray:
    """Column indices of the ``k`` best scores per row, best first, never an excluded column.

    Ties break by column index (stable), so rankings are deterministic. Rows with fewer than ``k`` allowed
    columns are padded with ``-1``.

    Args:
        scores: ``(rows, items)`` scores, higher is better.
        k: List length.
        exclude: ``(rows, items)`` sparse matrix whose non-zero entries may not be recommended.
    """
    scores = np.array(scores, dtype="float64", copy=True)
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    k_eff = min(k, scores.shape[1])
    # Stable sort of the negated scores: the equal scores keep column order.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
    chosen = np.take_along_axis(scores, order, axis=1)
    order = np.where(np.isneginf(chosen), -1, order)
    if k_eff < k:
        order = np.pad(order, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return order


def recall_at_k(ranked: np.ndarray, relevant: list[np.ndarray], k: int) -> float:
    """Mean over users of |top-k ∩ relevant| / |relevant| (users with no relevant item are not passed in)."""
    if not relevant:
        return float("nan")
    hits = [np.isin(rel, row[:k]).sum() / len(rel) for row, rel in zip(ranked, relevant, strict=True)]
    return float(np.mean(hits))


def recall_curve(ranked: np.ndarray, relevant: list[np.ndarray], k_max: int) -> np.ndarray:
    """Recall@k for every k in ``1..k_max`` (one pass over the lists instead of one per k)."""
    if not relevant:
        return np.full(k_max, np.nan)
    width = min(k_max, ranked.shape[1])
    hits = np.array([np.isin(row[:width], rel) for row, rel in zip(ranked, relevant, strict=True)], dtype=float)
    sizes = np.array([len(rel) for rel in relevant], dtype=float)
    curve = (np.cumsum(hits, axis=1) / sizes[:, None]).mean(axis=0)
    return np.pad(curve, (0, k_max - width), mode="edge")


def ndcg_per_user(ranked: np.ndarray, relevant: list[np.ndarray], k: int) -> np.ndarray:
    """Binary NDCG@k of each row: DCG of the hits over the DCG of a list starting with every relevant item."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = []
    for row, rel in zip(ranked, relevant, strict=True):
        top = row[:k]
        dcg = discounts[: len(top)][np.isin(top, rel)].sum()
        ideal = discounts[: min(len(rel), k)].sum()
        out.append(dcg / ideal)
    return np.asarray(out, dtype="float64")


def ndcg_at_k(ranked: np.ndarray, relevant: list[np.ndarray], k: int) -> float:
    """Mean binary NDCG@k over the rows (see :func:`ndcg_per_user`)."""
    if not relevant:
        return float("nan")
    return float(np.mean(ndcg_per_user(ranked, relevant, k)))


def per_user(ranked: np.ndarray, relevant: list[np.ndarray], users: np.ndarray, k: int) -> pd.DataFrame:
    """One row per user (index ``customer_id``): ``ndcg_at_k`` and ``recall_at_k`` (the gate's per-unit frame)."""
    recall = [np.isin(rel, row[:k]).sum() / len(rel) for row, rel in zip(ranked, relevant, strict=True)]
    return pd.DataFrame({f"ndcg_at_{k}": ndcg_per_user(ranked, relevant, k),
                         f"recall_at_{k}": np.asarray(recall, dtype="float64")},
                        index=pd.Index(np.asarray(users, dtype=str), name="customer_id"))


def coverage(ranked: np.ndarray, n_items: int, k: int) -> float:
    """Share of the catalogue appearing in at least one top-k list."""
    shown = np.unique(ranked[:, :k])
    return float((shown >= 0).sum() / n_items) if n_items else 0.0


def ranking_metrics(ranked: np.ndarray, relevant: list[np.ndarray], n_items: int, k: int = 10) -> dict[str, float]:
    """``recall_at_k``, ``ndcg_at_k`` and ``coverage_at_k`` (named with the value of ``k``)."""
    return {
        f"recall_at_{k}": recall_at_k(ranked, relevant, k),
        f"ndcg_at_{k}": ndcg_at_k(ranked, relevant, k),
        f"coverage_at_{k}": coverage(ranked, n_items, k),
    }
