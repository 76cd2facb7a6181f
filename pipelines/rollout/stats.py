"""Statistics of an A/B rollout (numpy/scipy only).

Three questions, three tests:

* Is the traffic split what we configured? -- :func:`srm_test`, a chi-square goodness-of-fit test of the unit
  counts per arm against the configured challenger weight (sample-ratio mismatch, Kohavi et al., *Trustworthy
  Online Controlled Experiments*, 2020, ch. 21).
* How big is the effect? -- :func:`welch_effect`, difference in means of the per-unit business metric with a 95%
  Welch confidence interval and the relative lift (delta-method interval). Fixed-horizon: report it, but do not
  stop on it while peeking.
* Can we stop now? -- :func:`msprt`, the mixture sequential probability ratio test, whose p-value and confidence
  sequence stay valid however often they are looked at.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm's per-unit metric."""

    n: int
    mean: float
    var: float
    """Unbiased sample variance (``ddof=1``); 0 when ``n < 2``."""

    @classmethod
    def from_values(cls, values) -> "ArmStats":
        """Summarise an array of per-unit metric values."""
        arr = np.asarray(values, dtype=float)
        n = int(arr.size)
        if n == 0:
            return cls(0, 0.0, 0.0)
        return cls(n, float(arr.mean()), float(arr.var(ddof=1)) if n > 1 else 0.0)

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float) -> "ArmStats":
        """From ``n``, the sum and the sum of squares (what a SQL ``GROUP BY`` returns)."""
        n = int(n)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        var = max(0.0, (total_sq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return cls(n, float(mean), float(var))


# ------------------------------------------------------------------ sample-ratio mismatch
@dataclass(frozen=True)
class SRMResult:
    champion: int
    challenger: int
    expected_challenger_share: float
    observed_challenger_share: float | None
    chi2: float
    p_value: float
    mismatch: bool

    def to_dict(self) -> dict:
        return asdict(self)


def srm_test(n_champion: int, n_challenger: int, weight: float, threshold: float = 0.001) -> SRMResult:
    """Chi-square test (1 d.o.f.) of the observed split against the configured challenger ``weight``.

    Args:
        n_champion: Units assigned to the champion.
        n_challenger: Units assigned to the challenger.
        weight: Configured challenger share, in (0, 1).
        threshold: Alarm when the p-value is below this (small: SRM is checked at every peek).

    Returns:
        The statistic, p-value and whether it signals a mismatch (p < threshold).
    """
    if not 0.0 < weight < 1.0:
        raise ValueError(f"weight must be in (0, 1), got {weight}")
    total = n_champion + n_challenger
    if total == 0:
        return SRMResult(0, 0, weight, None, 0.0, 1.0, False)
    expected = np.array([total * (1.0 - weight), total * weight])
    observed = np.array([n_champion, n_challenger], dtype=float)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    p = float(sps.chi2.sf(chi2, df=1))
    return SRMResult(int(n_champion), int(n_challenger), weight, n_challenger / total, chi2, p, p < threshold)


# ------------------------------------------------------------------ fixed-horizon effect (Welch)
@dataclass(frozen=True)
class Effect:
    control_mean: float
    treatment_mean: float
    diff: float
    """``treatment - control`` (challenger minus champion)."""
    ci_low: float
    ci_high: float
    se: float
    df: float
    p_value: float
    lift: float | None
    """``diff / control_mean``; ``None`` when the control mean is 0."""
    lift_ci_low: float | None
    lift_ci_high: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def welch_effect(control: ArmStats, treatment: ArmStats, level: float = 0.95) -> Effect:
    """Difference in means with a Welch (unequal-variance) t interval and the relative lift.

    The lift interval uses the delta method on ``mean_t / mean_c - 1`` (both means are uncertain).

    Raises:
        ValueError: if an arm has fewer than 2 units.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError(f"each arm needs at least 2 units (control {control.n}, treatment {treatment.n})")
    va, vb = control.var / control.n, treatment.var / treatment.n
    se = math.sqrt(va + vb)
    diff = treatment.mean - control.mean
    if se == 0.0:
        df = float(control.n + treatment.n - 2)
        p = 1.0 if diff == 0 else 0.0
        lo = hi = diff
    else:
        # Welch-Satterthwaite degrees of freedom.
        denom = (va * va / (control.n - 1) if va else 0.0) + (vb * vb / (treatment.n - 1) if vb else 0.0)
        df = (va + vb) ** 2 / denom if denom else float(control.n + treatment.n - 2)
        t = sps.t.ppf(0.5 + level / 2, df)
        lo, hi = diff - t * se, diff + t * se
        p = float(2 * sps.t.sf(abs(diff) / se, df))
    lift = lift_lo = lift_hi = None
    if control.mean != 0.0:
        lift = diff / control.mean
        mc, mt = control.mean, treatment.mean
        lift_se = math.sqrt(vb / mc**2 + (mt**2 / mc**4) * va)
        z = sps.norm.ppf(0.5 + level / 2)
        lift_lo, lift_hi = lift - z * lift_se, lift + z * lift_se
    return Effect(control.mean, treatment.mean, diff, float(lo), float(hi), se, float(df), float(p), lift,
                  lift_lo, lift_hi)


# ------------------------------------------------------------------ always-valid sequential test (mSPRT)
@dataclass(frozen=True)
class SequentialResult:
    diff: float
    likelihood_ratio: float
    p_value: float
    """Always-valid p-value of this look, ``min(1, 1/LR)``; take the running minimum over looks."""
    cs_low: float
    cs_high: float
    """Confidence sequence at level ``1 - alpha``: covers the true difference at all looks simultaneously."""
    tau: float
    alpha: float
    significant: bool

    def to_dict(self) -> dict:
        return asdict(self)


def msprt(control: ArmStats, treatment: ArmStats, alpha: float = 0.05, tau: float | None = None,
          effect_scale: float = 0.1) -> SequentialResult:
    """Two-sample mixture SPRT with a normal mixing distribution (always-valid inference).

    Method: Robbins (1970) normal-mixture martingale as used for A/B testing by Johari, Pekelis & Walsh,
    "Always Valid Inference: Bringing Sequential Analysis to A/B Testing" (arXiv:1512.04922, 2015) and Johari,
    Koomen, Pekelis & Walsh, "Peeking at A/B Tests" (KDD 2017). With the difference in means ``d`` estimated
    with variance ``V`` (CLT) and the mixture ``theta ~ N(0, tau^2)`` over the true difference, the likelihood
    ratio against ``theta = 0`` is::

        LR = sqrt(V / (V + tau^2)) * exp(d^2 tau^2 / (2 V (V + tau^2)))

    ``LR`` is a non-negative martingale under the null, so by Ville's inequality ``P(sup_n LR_n >= 1/alpha) <=
    alpha``: rejecting whenever ``LR >= 1/alpha`` at *any* look keeps the type-I error at ``alpha``, and
    ``min(1, 1/LR)`` (running minimum) is an always-valid p-value. Inverting the test gives the confidence
    sequence ``d +- sqrt(V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)))``.

    Args:
        control: Champion arm.
        treatment: Challenger arm.
        alpha: Type-I error over all looks.
        tau: Standard deviation of the mixing distribution, in metric units. Defaults to ``effect_scale`` times
            the pooled per-unit standard deviation (a standardised effect of 0.1 is a typical e-commerce lift).
        effect_scale: Standardised effect the test is tuned to detect fastest when ``tau`` is not given.

    Raises:
        ValueError: if an arm has fewer than 2 units.
    """
    if control.n < 2 or treatment.n < 2:
        raise ValueError(f"each arm needs at least 2 units (control {control.n}, treatment {treatment.n})")
    diff = treatment.mean - control.mean
    v = control.var / control.n + treatment.var / treatment.n
    if tau is None:
        pooled = ((control.n - 1) * control.var + (treatment.n - 1) * treatment.var) / (control.n + treatment.n - 2)
        tau = effect_scale * math.sqrt(pooled)
    if v <= 0.0 or tau <= 0.0:
        # No variance at all: nothing can be concluded from noise-free but degenerate data (e.g. no outcomes yet).
        return SequentialResult(diff, 1.0, 1.0, -math.inf, math.inf, float(tau), alpha, False)
    t2 = tau * tau
    log_lr = 0.5 * math.log(v / (v + t2)) + diff * diff * t2 / (2.0 * v * (v + t2))
    lr = math.exp(min(log_lr, 700.0))
    p = min(1.0, math.exp(-log_lr)) if log_lr > -700 else 1.0
    half = math.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + math.log((v + t2) / v)))
    return SequentialResult(diff, lr, p, diff - half, diff + half, float(tau), alpha, lr >= 1.0 / alpha)


# ------------------------------------------------------------------ guardrails
def exceeds_rate(events: int, n: int, ceiling: float, alpha: float) -> tuple[bool, float]:
    """One-sided exact binomial test that the true rate of ``events`` in ``n`` trials is above ``ceiling``.

    Used for both guardrails: the error rate, and the p99 latency (``p99 <= L`` iff at most 1% of requests are
    slower than ``L``, so "p99 above the ceiling" is "the share of requests slower than the ceiling exceeds 1%").
    Few samples never trigger a breach by chance; a gross breach triggers after a handful of requests.

    Returns:
        ``(breach, p_value)``.
    """
    if n == 0:
        return False, 1.0
    if ceiling <= 0.0:
        return events > 0, 0.0 if events > 0 else 1.0
    if ceiling >= 1.0:
        return False, 1.0
    p = float(sps.binomtest(int(events), int(n), ceiling, alternative="greater").pvalue)
    return p < alpha, p
