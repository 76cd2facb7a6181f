"""The LTV oracle: the generator's expected spend (generated batches only, never used for training)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def true_expected_spend(truth_dir: Path, holdout: pd.DataFrame, cutoff: pd.Timestamp,
                        horizon_days: int) -> pd.Series:
    """Expected spend of each holdout customer in ``(cutoff, cutoff + horizon_days]`` given their hidden purchase
    rate, churn hazard, mean spend and whether they are still alive (aligned with ``holdout``)."""
    from pipelines.data.generator import expected_spend, load_truth

    truth, _, _ = load_truth(truth_dir)
    expected = expected_spend(truth, cutoff, horizon_days)
    return holdout["customer_id"].map(expected).astype(float)
