"""Per-prediction feature contributions: each customer's margin split into one term per feature plus a bias.

XGBoost models use the booster's native TreeSHAP (``pred_contribs=True``): exact SHAP values whose sum with the
bias equals the raw margin (log-odds for a classifier, the prediction for a regressor). Linear models (alone or after
a per-feature scaler, e.g. the logistic-regression baseline when it wins a family's selection) decompose exactly as
``coef * scaled value``. Anything else is not explainable here, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


class NotExplainable(ValueError):
    """The model has no exact additive decomposition here (e.g. a non-tree, non-linear candidate)."""


@dataclass
class Contributions:
    """``values[i, j]``: feature ``names[j]``'s contribution to row ``i``; ``bias[i] + values[i].sum() == margin[i]``."""

    names: list[str]
    values: np.ndarray
    bias: np.ndarray
    margin: np.ndarray

    def top(self, i: int, x, k: int) -> list[dict[str, Any]]:
        """Row ``i``'s ``k`` largest contributions by magnitude, with the feature values ``x`` (a row, in
        ``names`` order: numbers, or a category's text)."""
        order = np.argsort(-np.abs(self.values[i]), kind="stable")[:k]
        return [{"feature": self.names[j], "value": _plain(x[j]), "contribution": float(self.values[i, j])}
                for j in order]


def _plain(v: Any) -> float | str | None:
    if v is None:
        return None
    if isinstance(v, (str, np.str_)):
        return str(v)
    f = float(v)
    return None if np.isnan(f) else f


def contributions(model: Any, x: np.ndarray, names: list[str]) -> Contributions:
    """Exact additive contributions of ``model`` on the rows ``x`` (columns in ``names`` order).

    Raises:
        NotExplainable: the model is neither an XGBoost model nor a linear model after per-feature scaling.
    """
    x = np.asarray(x, dtype=np.float64)
    if hasattr(model, "get_booster"):
        return _tree_shap(model, x, names)
    return _linear(model, x, names)


def _tree_shap(model: Any, x: np.ndarray, names: list[str]) -> Contributions:
    import xgboost as xgb

    booster = model.get_booster()
    order = booster.feature_names or names
    if list(order) != list(names):
        raise NotExplainable(f"features {names} are not the model's {order}")
    dm = xgb.DMatrix(x, feature_names=list(order))
    contribs = booster.predict(dm, pred_contribs=True, validate_features=False)
    margin = booster.predict(dm, output_margin=True, validate_features=False)
    if contribs.ndim != 2:  # multi-class boosters give one block per class: not a single margin
        raise NotExplainable("multi-output XGBoost models are not explained")
    return Contributions(list(names), contribs[:, :-1].astype(np.float64), contribs[:, -1].astype(np.float64),
                         np.asarray(margin, dtype=np.float64).reshape(-1))


def _linear(model: Any, x: np.ndarray, names: list[str]) -> Contributions:
    steps = list(getattr(model, "steps", [("model", model)]))
    *pre, (_, last) = steps
    coef = getattr(last, "coef_", None)
    w = None if coef is None else np.asarray(coef, dtype=np.float64)
    if w is None or (w.ndim > 1 and w.shape[0] != 1) or w.size != x.shape[1]:
        raise NotExplainable(f"{type(last).__name__} is neither an XGBoost nor a single-output linear model on "
                             f"the {x.shape[1]} features")
    z = x
    for _, step in pre:
        z = step.transform(z)
        if np.asarray(z).shape[1] != x.shape[1]:
            raise NotExplainable(f"{type(step).__name__} changes the number of features; no per-feature split")
    z = np.asarray(z, dtype=np.float64)
    values = z * w.reshape(-1)
    bias = np.full(len(x), float(np.asarray(getattr(last, "intercept_", 0.0)).reshape(-1)[0]))
    return Contributions(list(names), values, bias, bias + values.sum(axis=1))


def grouped_contributions(pipeline: Any, frame) -> Contributions:
    """Contributions of a scikit-learn ``Pipeline`` (a ``ColumnTransformer`` of encoders, then a model) per column
    of ``frame``: the terms of a column's derived inputs (its one-hot levels, its missing-value indicator) are summed,
    which keeps the split exact (bias plus the sum is still the margin).

    Raises:
        NotExplainable: the pipeline's encoders do not say which input column each derived column comes from.
    """
    *pre, (_, last) = pipeline.steps
    if not pre:
        return contributions(last, np.asarray(frame, dtype=np.float64), list(frame.columns))
    from sklearn.pipeline import Pipeline

    encode = Pipeline(pre) if len(pre) > 1 else pre[0][1]
    z = np.asarray(encode.transform(frame), dtype=np.float64)
    try:
        derived = [str(n) for n in encode.get_feature_names_out()]
    except (AttributeError, ValueError) as exc:
        raise NotExplainable(f"the encoders name no output columns ({exc})") from None
    inner = contributions(last, z, derived)
    columns = [str(c) for c in frame.columns]
    owner = _owners(derived, columns)
    values = np.zeros((len(z), len(columns)))
    for j, col in enumerate(owner):
        values[:, columns.index(col)] += inner.values[:, j]
    return Contributions(columns, values, inner.bias, inner.margin)


def _owners(derived: list[str], columns: list[str]) -> list[str]:
    """The input column each derived column comes from (``transformer__col``, ``__missingindicator_col``,
    ``__col_level``); the longest matching column name wins, so ``region`` and ``region_code`` stay apart."""
    by_length = sorted(columns, key=len, reverse=True)
    out = []
    for name in derived:
        base = name.split("__", 1)[-1].removeprefix("missingindicator_")
        match = next((c for c in by_length if base == c), None) or next(
            (c for c in by_length if base.startswith(c + "_")), None)
        if match is None:
            raise NotExplainable(f"cannot tell which input column {name!r} comes from")
        out.append(match)
    return out


def summary_figure(c: Contributions, x: np.ndarray, top: int = 15):
    """A SHAP-style summary plot: features by mean |contribution|, each row's contribution coloured by its value."""
    import matplotlib.pyplot as plt

    x = _numeric(x)
    order = np.argsort(-np.abs(c.values).mean(axis=0))[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(order) + 1.5))
    rng = np.random.default_rng(0)
    for row, j in enumerate(order):
        v = x[:, j]
        ok = np.isfinite(v)
        span = (np.ptp(v[ok]) if ok.any() else 0.0) or 1.0
        colour = np.where(ok, (v - (v[ok].min() if ok.any() else 0.0)) / span, 0.5)
        jitter = rng.uniform(-0.25, 0.25, len(v))
        ax.scatter(c.values[:, j], row + jitter, c=colour, cmap="coolwarm", s=6, alpha=0.7, linewidths=0)
    ax.set_yticks(range(len(order)), [c.names[j] for j in order])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("contribution to the margin (TreeSHAP / linear term); colour: feature value low -> high")
    ax.set_title("Feature contributions on the holdout")
    fig.tight_layout()
    return fig


def _numeric(x) -> np.ndarray:
    """Feature values as floats for colouring: numbers as they are, categories by their code."""
    import pandas as pd

    frame = pd.DataFrame(x)
    cols = [pd.to_numeric(frame[c], errors="coerce") if pd.api.types.is_numeric_dtype(frame[c])
            else pd.Series(pd.Categorical(frame[c].astype(str)).codes, index=frame.index, dtype="float64")
            for c in frame.columns]
    return np.column_stack([c.to_numpy(dtype=np.float64) for c in cols]) if cols else np.zeros((len(frame), 0))
