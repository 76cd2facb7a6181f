"""Figures of a churn evaluation (holdout)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def roc(y: np.ndarray, curves: dict[str, np.ndarray]):
    """ROC curve of each scorer, with its AUC in the legend."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn ROC (holdout)")
    ax.legend(loc="lower right")
    return fig


def calibration(y: np.ndarray, curves: dict[str, np.ndarray]):
    """Observed churn rate against the predicted probability, by quantile bin."""
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        frac, mean = calibration_curve(y, np.clip(scores, 0, 1), n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration (holdout)")
    ax.legend()
    return fig


def importance(model):
    """Gain of each input column (one-hot levels summed per attribute) in the boosted trees."""
    import matplotlib.pyplot as plt

    encode, booster = model.estimator.named_steps["encode"], model.estimator.named_steps["classify"].get_booster()
    gain = booster.get_score(importance_type="gain")
    names = list(encode.get_feature_names_out())
    per_column: dict[str, float] = {c: 0.0 for c in model.columns}
    for j, out in enumerate(names):
        column = out.split("__", 1)[1]
        source = column if column in per_column else next((c for c in model.categorical if column.startswith(c)),
                                                          None)
        if source is not None:
            per_column[source] += gain.get(f"f{j}", 0.0)
    imp = pd.Series(per_column)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(imp) + 1))
    imp.sort_values().plot.barh(ax=ax)
    ax.set(xlabel="gain", title="Feature importance")
    fig.tight_layout()
    return fig


def learning_curve(evals: dict):
    """AUC per boosting round on the fit and validation parts of the selection fit (early stopping's view)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for split, name in (("validation_0", "fit"), ("validation_1", "validation")):
        if split in evals:
            ax.plot(evals[split]["auc"], label=name)
    ax.set(xlabel="boosting round", ylabel="AUC", title="Learning curve")
    ax.legend()
    return fig
