"""The champion gate: a version is promoted only if it beats the best baseline and the champion by a margin that
holds up statistically on the same holdout.

Each family scores a model per unit of its holdout (a customer, a user, a series, an image, an episode: one row of
a frame indexed by the unit id) and says how the primary metric is computed from such a frame. The gate resamples
the units with replacement (a *paired* bootstrap: both models are scored on the same resampled units) and takes a
confidence interval of the improvement. The improvement must be above zero over the whole interval; no fixed
``min_delta`` is needed, so one rule serves AUC, MAE in money and MASE alike. On fewer than ``min_units`` common
units (a one-series shop) the interval means nothing, so the gate does not promote and says why; a person can
(``shopflow promote MODEL VERSION --reason``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

Metric = Callable[[pd.DataFrame], float]


@dataclass
class Comparison:
    """The challenger against one other model on the same holdout units.

    ``improvement`` is signed so that positive is better whatever the metric's direction; ``low``/``high`` bound
    it at the gate's confidence.
    """

    against: str
    challenger: float
    other: float
    improvement: float
    low: float
    high: float
    units: int
    holds: bool
    min_units: int = 1

    def describe(self, metric: str) -> str:
        verdict = "holds up" if self.holds else "does not hold up"
        if self.units < self.min_units:
            verdict = f"cannot be judged on fewer than {self.min_units} units"
        return (f"{metric} {self.challenger:.4f} vs {self.against} {self.other:.4f}: improvement "
                f"{self.improvement:+.4f} (CI {self.low:+.4f} to {self.high:+.4f}, {self.units} units) {verdict}")


def paired_bootstrap(challenger: pd.DataFrame, other: pd.DataFrame, metric: Metric, higher_is_better: bool,
                     against: str, samples: int = 1000, confidence: float = 0.95, seed: int = 0,
                     min_units: int = 1) -> Comparison:
    """Confidence interval of the challenger's improvement over ``other`` by resampling their common units.

    Args:
        challenger, other: Per-unit frames (index = unit id, unique) that ``metric`` turns into the primary metric.
        metric: The family's aggregate (e.g. AUC of ``y`` and ``p``, mean of per-user recall).
        higher_is_better: Direction of the metric.
        against: Name of ``other`` in reports (``"baseline logistic_regression"``, ``"champion v3"``).
        samples: Bootstrap resamples; resamples on which the metric is undefined (e.g. one class only) are skipped.
        confidence: Two-sided level of the interval.
        seed: Seed of the resampling (the gate is deterministic).
        min_units: Fewer common units than this never hold up (the interval of a handful of units is no evidence).

    Raises:
        ValueError: when a frame's index is not unique or the frames share no unit.
    """
    for name, frame in (("challenger", challenger), (against, other)):
        if not frame.index.is_unique:
            raise ValueError(f"{name}: per-unit holdout frame has duplicate unit ids")
    common = challenger.index.intersection(other.index, sort=False)
    if len(common) == 0:
        raise ValueError(f"challenger and {against} share no holdout unit")
    a, b = challenger.loc[common], other.loc[common]
    sign = 1.0 if higher_is_better else -1.0
    point_a, point_b = float(metric(a)), float(metric(b))
    rng = np.random.default_rng(seed)
    diffs = []
    n = len(common)
    for _ in range(samples):
        idx = rng.integers(0, n, n)
        da, db = metric(a.iloc[idx]), metric(b.iloc[idx])
        if da is not None and db is not None and math.isfinite(da) and math.isfinite(db):
            diffs.append(sign * (da - db))
    if not diffs:
        raise ValueError(f"the metric is undefined on every resample of the holdout against {against}")
    tail = (1.0 - confidence) / 2.0
    low, high = (float(q) for q in np.quantile(diffs, [tail, 1.0 - tail]))
    return Comparison(against=against, challenger=point_a, other=point_b, improvement=sign * (point_a - point_b),
                      low=low, high=high, units=n, holds=low > 0.0 and n >= min_units, min_units=min_units)


@dataclass
class GateDecision:
    """Outcome of the gate for one registered version."""

    promoted: bool
    reason: str
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    metric: str
    candidate: str = "model"
    best_baseline: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def best_baseline(frames: Mapping[str, pd.DataFrame], metric: Metric, higher_is_better: bool,
                  exclude: str | None = None) -> str | None:
    """Name of the baseline with the best holdout metric (``exclude``: the candidate itself, when it is one)."""
    scores = {name: float(metric(f)) for name, f in frames.items() if name != exclude}
    scores = {k: v for k, v in scores.items() if math.isfinite(v)}
    if not scores:
        return None
    return (max if higher_is_better else min)(scores, key=scores.get)


def decide(*, metric_name: str, metric: Metric, higher_is_better: bool, challenger_version: str,
           challenger: pd.DataFrame, candidate: str, baselines: Mapping[str, pd.DataFrame],
           champion_version: str | None, champion: pd.DataFrame | None, samples: int = 1000,
           confidence: float = 0.95, seed: int = 0, min_units: int = 1) -> GateDecision:
    """Promote ``challenger_version`` only if its improvement over the best baseline and over the champion holds up.

    The first version is judged like every other: with no champion it must still beat the best baseline. When the
    registered candidate *is* a baseline (it won the family's selection on the validation split), it is compared
    with the best of the other baselines.
    """
    score = float(metric(challenger))
    champion_score = float(metric(champion)) if champion is not None else None
    if champion_version is not None and champion_version == challenger_version:
        return GateDecision(False, "challenger is already the champion", challenger_version, score,
                            champion_version, champion_score, metric_name, candidate=candidate)
    comparisons: list[Comparison] = []
    best = best_baseline(baselines, metric, higher_is_better, exclude=candidate)
    if best is not None:
        comparisons.append(paired_bootstrap(challenger, baselines[best], metric, higher_is_better,
                                            f"best baseline {best}", samples, confidence, seed, min_units))
    if champion is not None:
        comparisons.append(paired_bootstrap(challenger, champion, metric, higher_is_better,
                                            f"champion v{champion_version}", samples, confidence, seed + 1,
                                            min_units))
    promoted = all(c.holds for c in comparisons)
    parts = [c.describe(metric_name) for c in comparisons] or ["no baseline and no champion to compare with"]
    level = f"{confidence:.0%} paired bootstrap"
    reason = ("promoted: " if promoted else "not promoted: ") + "; ".join(parts) + f" ({level})"
    if candidate != "model":
        reason += f"; registered candidate: {candidate}"
    return GateDecision(promoted, reason, challenger_version, score, champion_version, champion_score, metric_name,
                        candidate=candidate, best_baseline=best, comparisons=comparisons)


def select_candidate(scores: Mapping[str, float], higher_is_better: bool) -> str:
    """The candidate with the best validation score (ties keep the first listed, e.g. the simpler baseline).

    Families call this on their validation split (never the holdout) with the model and its baselines.
    """
    finite = {k: v for k, v in scores.items() if v is not None and math.isfinite(v)}
    if not finite:
        raise ValueError("no candidate has a finite validation score")
    best = None
    for name, value in finite.items():
        if best is None or (value > finite[best] if higher_is_better else value < finite[best]):
            best = name
    return best
