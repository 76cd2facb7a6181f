"""Classification and retrieval metrics of the vision family."""

from __future__ import annotations

import numpy as np
import pandas as pd

K = 10
"""Neighbours counted by ``recall_at_10``."""


def macro_f1(y_true: list[str], y_pred, classes: list[str]) -> float:
    """Macro-F1 over the categories present in the holdout (absent ones have no defined recall)."""
    from sklearn.metrics import f1_score

    present = [c for c in classes if c in set(y_true)]
    return float(f1_score(list(y_true), list(y_pred), labels=present, average="macro", zero_division=0))


def retrieval_at_k(query_emb: np.ndarray, query_pos: np.ndarray, gallery_emb: np.ndarray,
                   gallery_labels: np.ndarray, k: int = K) -> tuple[float, np.ndarray]:
    """Mean share of each query's ``k`` nearest gallery items (itself excluded) that share its label.

    Args:
        query_emb: ``(Q, D)`` L2-normalised query vectors.
        query_pos: Position of each query in the gallery (its own entry is excluded from its neighbours).
        gallery_emb: ``(G, D)`` L2-normalised gallery vectors.
        gallery_labels: ``(G,)`` labels.
        k: Neighbours per query (fewer when the gallery is smaller).

    Returns:
        ``(mean share, neighbour indices (Q, k'))``.
    """
    sims = query_emb @ gallery_emb.T
    sims[np.arange(len(query_pos)), query_pos] = -np.inf
    k = min(k, gallery_emb.shape[0] - 1)
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    hits = gallery_labels[nn] == gallery_labels[query_pos][:, None]
    return float(hits.mean()), nn


def retrieval_ceiling(query_pos: np.ndarray, gallery_labels: np.ndarray, k: int = K) -> float:
    """Best achievable :func:`retrieval_at_k`: small categories cannot fill ``k`` neighbours."""
    k = min(k, gallery_labels.size - 1)
    counts = pd.Series(gallery_labels).value_counts()
    same = counts.reindex(gallery_labels[query_pos]).to_numpy() - 1
    return float(np.minimum(same, k).mean() / k)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def holdout_frame(model, data) -> pd.DataFrame:
    """The model's holdout results per picture (the gate's unit): index ``image`` (unit id), ``y``, ``pred``.

    A served model refit on every picture is judged by its copy trained without the holdout
    (:attr:`~pipelines.models.vision.classifier.ImageModel.holdout_model`)."""
    judged = model.holdout_model
    pred = judged.classify(data.holdout_images) if data.holdout_images else np.array([], dtype=object)
    return pd.DataFrame({"y": list(data.holdout_labels), "pred": [str(p) for p in pred]},
                        index=pd.Index(data.holdout_ids, name="image"))


def frame_metric(frame: pd.DataFrame) -> float:
    """Macro-F1 (the primary metric) of a per-picture frame or any resample of its rows; NaN when empty."""
    if frame.empty:
        return float("nan")
    return macro_f1(frame["y"].tolist(), frame["pred"].tolist(), sorted(set(frame["y"])))
