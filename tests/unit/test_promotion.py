"""The champion gate's paired bootstrap: real resampling on made-up per-unit holdout results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.promotion import decide, paired_bootstrap, select_candidate


def auc(frame: pd.DataFrame) -> float:
    return float(roc_auc_score(frame["y"], frame["p"])) if frame["y"].nunique() == 2 else float("nan")


def mae(frame: pd.DataFrame) -> float:
    return float(frame["abs_error"].mean())


def scored(n: int, signal: float, seed: int, y=None) -> pd.DataFrame:
    """A classifier's holdout: labels and scores that carry ``signal`` (0 = coin flip)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n) if y is None else y
    p = signal * y + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "p": p}, index=pd.Index([f"c{i}" for i in range(n)], name="unit"))


def gate(**kw):
    args = dict(metric_name="auc", metric=auc, higher_is_better=True, challenger_version="2", candidate="model",
                champion_version=None, champion=None, samples=400)
    return decide(**(args | kw))


def test_identical_models_never_hold_up() -> None:
    a = scored(800, 1.0, seed=1)
    cmp = paired_bootstrap(a, a.copy(), auc, True, "itself", samples=300)
    assert cmp.improvement == 0 and cmp.low <= 0 <= cmp.high and not cmp.holds


def test_a_clear_improvement_holds_and_a_tiny_one_on_few_units_does_not() -> None:
    y = np.random.default_rng(0).integers(0, 2, 600)
    strong, weak = scored(600, 2.0, seed=2, y=y), scored(600, 0.5, seed=3, y=y)
    clear = paired_bootstrap(strong, weak, auc, True, "weak", samples=400)
    assert clear.holds and clear.low > 0.1
    y = y[:60]
    a, b = scored(60, 1.0, seed=4, y=y), scored(60, 1.0, seed=4, y=y)
    b["p"] = b["p"] + np.random.default_rng(5).normal(0, 0.3, 60)  # a slightly noisier twin
    tiny = paired_bootstrap(a, b, auc, True, "twin", samples=400)
    assert abs(tiny.improvement) < 0.05 and not tiny.holds


def test_the_first_version_must_beat_the_best_baseline() -> None:
    y = np.random.default_rng(0).integers(0, 2, 500)
    model, popular, logistic = scored(500, 1.0, 6, y), scored(500, 0.2, 7, y), scored(500, 2.5, 8, y)
    lost = gate(challenger=model, baselines={"popular": popular, "logistic": logistic})
    assert not lost.promoted and lost.best_baseline == "logistic" and lost.champion_version is None
    assert "does not hold up" in lost.reason and "best baseline logistic" in lost.reason
    won = gate(challenger=logistic, candidate="logistic", baselines={"popular": popular, "logistic": logistic})
    # The registered candidate is the logistic baseline itself: it must beat the best of the *other* baselines.
    assert won.promoted and won.best_baseline == "popular" and "registered candidate: logistic" in won.reason


def test_the_champion_must_be_beaten_too() -> None:
    y = np.random.default_rng(0).integers(0, 2, 500)
    base, champ, new = scored(500, 0.3, 9, y), scored(500, 2.0, 10, y), scored(500, 2.0, 11, y)
    same_quality = gate(challenger=new, baselines={"b": base}, champion_version="1", champion=champ)
    assert [c.holds for c in same_quality.comparisons] == [True, False] and not same_quality.promoted
    better = gate(challenger=scored(500, 4.0, 12, y), baselines={"b": base}, champion_version="1", champion=champ)
    assert better.promoted and better.champion_score < better.challenger_score
    again = gate(challenger=new, baselines={"b": base}, champion_version="2", champion=new)
    assert not again.promoted and again.reason == "challenger is already the champion"


def test_lower_is_better_metrics_and_units_are_aligned_by_id() -> None:
    rng = np.random.default_rng(1)
    ids = [f"u{i}" for i in range(300)]
    good = pd.DataFrame({"abs_error": rng.gamma(2, 5, 300)}, index=ids)
    bad = pd.DataFrame({"abs_error": good["abs_error"] * 1.5 + 1}, index=ids)
    shuffled = bad.sample(frac=1.0, random_state=0)  # same units, another order: pairing is by id
    cmp = paired_bootstrap(good, shuffled, mae, False, "bad", samples=300)
    assert cmp.holds and cmp.improvement == pytest.approx(mae(bad) - mae(good))
    with pytest.raises(ValueError, match="duplicate"):
        paired_bootstrap(pd.concat([good, good]), bad, mae, False, "bad")
    with pytest.raises(ValueError, match="share no"):
        paired_bootstrap(good, bad.set_axis([f"x{i}" for i in range(300)]), mae, False, "bad")


def test_the_bootstrap_is_deterministic_for_a_seed() -> None:
    y = np.random.default_rng(0).integers(0, 2, 300)
    a, b = scored(300, 1.2, 1, y), scored(300, 1.0, 2, y)
    first, second = (paired_bootstrap(a, b, auc, True, "b", samples=200, seed=7) for _ in range(2))
    assert (first.low, first.high) == (second.low, second.high)


def test_select_candidate_uses_the_metric_direction_and_keeps_the_first_on_ties() -> None:
    assert select_candidate({"model": 0.91, "logistic": 0.92}, True) == "logistic"
    assert select_candidate({"model": 10.0, "bgnbd": 12.0}, False) == "model"
    assert select_candidate({"popular": 0.3, "model": 0.3}, True) == "popular"
    assert select_candidate({"model": float("nan"), "popular": 0.1}, True) == "popular"
    with pytest.raises(ValueError):
        select_candidate({"model": float("nan")}, True)


def test_too_few_units_are_never_evidence() -> None:
    """One series (a one-product shop) gives a zero-width interval: a point win must not pass for a significant one."""
    one = pd.DataFrame({"abs_error": [0.5]}, index=["series"])
    worse = pd.DataFrame({"abs_error": [0.9]}, index=["series"])
    loose = paired_bootstrap(one, worse, mae, False, "baseline", samples=200)
    assert loose.holds and loose.low == loose.high  # what the interval alone would say
    strict = paired_bootstrap(one, worse, mae, False, "baseline", samples=200, min_units=10)
    assert not strict.holds and "cannot be judged on fewer than 10 units" in strict.describe("mase")
    decision = decide(metric_name="mase", metric=mae, higher_is_better=False, challenger_version="1", challenger=one,
                      candidate="model", baselines={"seasonal_naive": worse}, champion_version=None, champion=None,
                      samples=200, min_units=10)
    assert not decision.promoted and "cannot be judged" in decision.reason
    rng = np.random.default_rng(3)
    ids = [f"s{i}" for i in range(40)]
    good = pd.DataFrame({"abs_error": rng.gamma(2, 1, 40)}, index=ids)
    assert paired_bootstrap(good, good * 2 + 1, mae, False, "b", samples=200, min_units=10).holds
