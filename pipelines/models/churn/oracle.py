"""The churn oracle: the generator's true churn probability (generated batches only, never used for training)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def true_churn_probability(truth_dir: Path, holdout: pd.DataFrame, cutoff: pd.Timestamp,
                           horizon_days: int) -> pd.Series:
    """True probability that each holdout customer churns in ``(cutoff, cutoff + horizon_days]``, given their
    hidden purchase rate, churn hazard and whether they are still alive (aligned with ``holdout``)."""
    from pipelines.data.generator import churn_probability, load_truth

    truth, _, _ = load_truth(truth_dir)
    probs = churn_probability(truth, cutoff, horizon_days)
    return holdout["customer_id"].map(probs).astype(float)
