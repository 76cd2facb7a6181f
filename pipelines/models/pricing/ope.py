"""Off-policy evaluation of a pricing policy from the logged price history (``daily_sales``).

The log is read as a contextual bandit: each product-day is one decision (context: product, day, yesterday's price;
action: the price level, i.e. the logged price binned to the nearest multiplier of the base price; reward: the
day's profit ``(price - cost) * units``). The target policy is deterministic, so ``pi(a | x) = 1`` for its action.

Estimators, with ``w = 1[a_logged = pi(x)] / mu(a_logged | x)`` clipped at ``max_weight``:

* IPS: ``mean(w * r)``; SNIPS: ``sum(w * r) / sum(w)`` (self-normalised, less variance, some bias);
* DM (direct method): ``mean(r_hat(x, pi(x)))`` from a reward model (the fitted demand curves);
* DR (doubly robust): ``DM + mean(w * (r - r_hat(x, a_logged)))``: unbiased if either the propensities or the
  reward model are right.

The logging propensities ``mu`` are unknown and must be estimated; see :func:`propensities`.
"""

from __future__ import annotations

import numpy as np


def propensities(rows: np.ndarray, levels: np.ndarray, n_products: int, n_levels: int,
                 smoothing: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Estimated logging policy: per product, the empirical frequency of each price level.

    Assumes the logging policy drew a product's level independently of the day's context (it ignores that
    promotions are scheduled runs and list prices drift slowly). Additive smoothing keeps every level possible so
    weights stay finite; support is judged on the raw counts.

    Args:
        rows: Product index of each logged decision.
        levels: Logged level of each decision.
        n_products: Number of products.
        n_levels: Number of levels.
        smoothing: Pseudo-count added to every level.

    Returns:
        ``(propensity, counts)``, both ``(products, levels)``.
    """
    counts = np.zeros((n_products, n_levels))
    np.add.at(counts, (rows, levels), 1.0)
    prop = (counts + smoothing) / (counts.sum(axis=1, keepdims=True) + smoothing * n_levels)
    return prop, counts


def estimate(reward: np.ndarray, logged_action: np.ndarray, target_action: np.ndarray, propensity: np.ndarray,
             reward_hat_logged: np.ndarray, reward_hat_target: np.ndarray, max_weight: float = 50.0
             ) -> dict[str, float]:
    """IPS, SNIPS, DM and DR estimates of the target policy's mean reward per decision.

    Args:
        reward: Logged reward of each decision.
        logged_action: Logged action of each decision.
        target_action: Action the target policy takes in the same context.
        propensity: Estimated probability of the logged action under the logging policy.
        reward_hat_logged: Reward model at the logged action.
        reward_hat_target: Reward model at the target action.
        max_weight: Importance weights are clipped here (bias for variance).

    Returns:
        ``ips, snips, dm, dr``, the match rate (share of decisions where the logged action is the target's) and the
        effective sample size of the weights.
    """
    match = logged_action == target_action
    w = np.where(match, np.minimum(1.0 / np.maximum(propensity, 1e-12), max_weight), 0.0)
    n = max(len(reward), 1)
    ips = float(np.sum(w * reward) / n)
    snips = float(np.sum(w * reward) / np.sum(w)) if np.sum(w) > 0 else float("nan")
    dm = float(np.mean(reward_hat_target)) if len(reward) else float("nan")
    dr = dm + float(np.sum(w * (reward - reward_hat_logged)) / n)
    ess = float(np.sum(w) ** 2 / np.sum(w**2)) if np.sum(w) > 0 else 0.0
    return {"ips": ips, "snips": snips, "dm": dm, "dr": dr, "match_rate": float(match.mean()) if n else 0.0,
            "ess": ess}
