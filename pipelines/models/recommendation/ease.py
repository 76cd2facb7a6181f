"""EASE (Steck 2019): a closed-form item-item linear autoencoder, strong on small and mid-sized catalogues.

``B = argmin ||X - X B||^2 + l2 ||B||^2`` with ``diag(B) = 0`` has the solution ``B = -P / diag(P)`` (zero
diagonal) with ``P = (X^T X + l2 I)^-1``; a customer's scores are ``x_u B``. ``X`` is ``log1p`` of the event
weights (a few heavy viewers do not dominate). The L2 is given as a multiple of the mean diagonal of ``X^T X``,
so one grid fits any event weighting and data size; it is chosen on the validation split.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

L2_GRID = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
"""Multiples of the mean item Gram diagonal tried on the validation split when ``ease_l2`` is not set."""


def features(weights: sparse.csr_matrix) -> sparse.csr_matrix:
    """The model's input ``X``: ``log1p`` of the event weights, float64."""
    x = sparse.csr_matrix(weights, dtype="float64", copy=True)
    x.data = np.log1p(x.data)
    return x


def fit_ease(weights: sparse.csr_matrix, l2: float) -> np.ndarray:
    """The item-item matrix ``B`` (``items x items``, zero diagonal) for an L2 of ``l2`` x the mean Gram diagonal."""
    x = features(weights)
    gram = (x.T @ x).toarray()
    diag = np.diag(gram).copy()
    lam = l2 * max(float(diag.mean()), 1e-9)
    gram[np.diag_indices_from(gram)] += lam
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b
