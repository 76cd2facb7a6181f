"""Drift statistics of one column: population stability index plus a two-sample test (scipy).

Numeric columns: PSI over the reference's quantile bins and the Kolmogorov-Smirnov test. Categorical columns (or
numeric ones with few distinct values, e.g. counts): PSI over the categories and the chi-square test of the 2 x k
contingency table. A column drifts when both say so: PSI alone is noisy on small samples, a p-value alone flags
shifts too small to matter on large ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

EPS = 1e-4
"""Floor of a bin's share in PSI (an empty bin would make it infinite)."""


@dataclass(frozen=True)
class Drift:
    """Drift of one column between a reference and a current sample."""

    column: str
    kind: str
    """``numeric`` (KS) or ``categorical`` (chi-square)."""
    psi: float
    test: str
    statistic: float
    p_value: float
    n_reference: int
    n_current: int
    reference_mean: float | None
    current_mean: float | None
    drifted: bool

    def to_dict(self) -> dict:
        return asdict(self)


def psi_from_shares(expected: np.ndarray, actual: np.ndarray) -> float:
    """``sum((a - e) * ln(a / e))`` over bins, shares floored at :data:`EPS`."""
    e = np.maximum(np.asarray(expected, float), EPS)
    a = np.maximum(np.asarray(actual, float), EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's quantile bins (ties merged, so a spike at 0 is one bin)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_idx = np.searchsorted(edges, reference, side="right")
    cur_idx = np.searchsorted(edges, current, side="right")
    k = len(edges) + 1
    expected = np.bincount(ref_idx, minlength=k) / len(reference)
    actual = np.bincount(cur_idx, minlength=k) / len(current)
    return psi_from_shares(expected, actual)


def is_categorical(values: pd.Series, max_categories: int) -> bool:
    """Non-numeric, boolean, or numeric with at most ``max_categories`` distinct values."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return True
    return values.nunique(dropna=True) <= max_categories


def column_drift(column: str, reference: pd.Series, current: pd.Series, *, bins: int = 10, max_psi: float = 0.25,
                 alpha: float = 0.001, max_categories: int = 20) -> Drift:
    """Drift of ``column`` from ``reference`` to ``current`` (missing values dropped on both sides).

    The kind is decided on the reference and the current sample together, so a count column that gains values
    stays categorical on both sides.
    """
    from scipy import stats

    ref, cur = reference.dropna(), current.dropna()
    both = pd.concat([ref, cur], ignore_index=True)
    if is_categorical(both, max_categories):
        # One category per value whatever the dtype: a count stored as int64 (snapshot) and float64 (served) is one.
        numeric_both = all(pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x) for x in (ref, cur))
        ref_s, cur_s = (ref.astype(float), cur.astype(float)) if numeric_both else (ref.astype(str), cur.astype(str))
        cats = sorted(set(ref_s) | set(cur_s))
        r = ref_s.value_counts().reindex(cats, fill_value=0).to_numpy(float)
        c = cur_s.value_counts().reindex(cats, fill_value=0).to_numpy(float)
        psi = psi_from_shares(r / r.sum(), c / c.sum())
        if len(cats) < 2:
            statistic, p_value = 0.0, 1.0
        else:
            res = stats.chi2_contingency(np.vstack([r, c]))
            statistic, p_value = float(res.statistic), float(res.pvalue)
        kind, test = "categorical", "chi-square"
    else:
        r, c = ref.to_numpy(float), cur.to_numpy(float)
        psi = numeric_psi(r, c, bins)
        res = stats.ks_2samp(r, c)
        statistic, p_value = float(res.statistic), float(res.pvalue)
        kind, test = "numeric", "ks"
    numeric = pd.api.types.is_numeric_dtype(both) and not pd.api.types.is_bool_dtype(both)
    return Drift(
        column=column, kind=kind, psi=round(psi, 6), test=test, statistic=round(statistic, 6),
        p_value=float(p_value), n_reference=len(ref), n_current=len(cur),
        reference_mean=float(ref.mean()) if numeric and len(ref) else None,
        current_mean=float(cur.mean()) if numeric and len(cur) else None,
        drifted=bool(psi > max_psi and p_value < alpha),
    )


def frame_drift(reference: pd.DataFrame, current: pd.DataFrame, *, min_rows: int = 50, **thresholds) -> list[Drift]:
    """:func:`column_drift` of every column both frames have with at least ``min_rows`` values on each side."""
    out = []
    for column in reference.columns:
        if column not in current.columns:
            continue
        if reference[column].notna().sum() < min_rows or current[column].notna().sum() < min_rows:
            continue
        out.append(column_drift(column, reference[column], current[column], **thresholds))
    return out
