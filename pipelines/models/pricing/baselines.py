"""The pricing baselines: static pricing (the base price) and the textbook myopic price from fitted elasticities.

Each is a plain simulator policy (:func:`static_policy`, :func:`plugin_policy`) and, as a candidate that can win the
family's selection and be registered, a :class:`RulePricing`: the agent's class with the rule in place of the
Q-network, so it is logged, loaded and served exactly like the agent (same flavor, ``price()``, guardrails).
"""

from __future__ import annotations

import numpy as np
import torch

from pipelines.models.pricing.agent import BASE_FEATURES, PricingPolicy
from pipelines.models.pricing.demand import DemandCurves
from pipelines.models.pricing.simulator import Catalog, Policy, SimState

STATIC = "static_price"
MYOPIC = "myopic_fitted"
RULES = (STATIC, MYOPIC)
"""Baseline names, simplest first (``select_candidate`` keeps the first of tied candidates)."""


def myopic_target(catalog: Catalog, curves: DemandCurves) -> np.ndarray:
    """Per product, the textbook myopic price ``cost * e / (1 + e)`` capped at the ceiling.

    With constant elasticity ``e < -1`` that price maximises the day's profit whatever the demand level; for
    ``e >= -1`` profit grows with price, so the target is the ceiling.
    """
    e = curves.elasticity
    target = np.where(e < -1, catalog.cost * e / np.minimum(1 + e, -1e-9), np.inf)
    return np.minimum(target, catalog.ceiling)


def static_levels(catalog: Catalog, rows: np.ndarray, last_price: np.ndarray) -> np.ndarray:
    """The reference level (base price within the guardrails), or the allowed level closest to it."""
    return catalog.closest_allowed(rows, last_price, np.full(len(rows), catalog.reference_level))


def myopic_levels(catalog: Catalog, target: np.ndarray, rows: np.ndarray, last_price: np.ndarray) -> np.ndarray:
    """The allowed level closest to each product's myopic target (ties: the lower price)."""
    gap = np.abs(catalog.prices[rows] - target[rows, None])
    return np.argmin(np.where(catalog.allowed(rows, last_price), gap, np.inf), axis=1)


def static_policy(catalog: Catalog) -> Policy:
    """Always the base price, clipped to the guardrails."""

    def policy(state: SimState, step: int) -> np.ndarray:
        return static_levels(catalog, state.rows, state.last_price)

    return policy


def plugin_policy(catalog: Catalog, curves: DemandCurves) -> Policy:
    """Each day, the allowed level closest to the myopic price of the (estimated) elasticity; ignores inventory."""
    target = myopic_target(catalog, curves)

    def policy(state: SimState, step: int) -> np.ndarray:
        return myopic_levels(catalog, target, state.rows, state.last_price)

    return policy


_FLOOR, _CEILING, _MYOPIC = (BASE_FEATURES.index(k) for k in ("floor_ratio", "ceiling_ratio", "myopic_price_ratio"))


class RulePricing(PricingPolicy):
    """A baseline rule as a registrable pricing policy.

    ``act`` applies the rule exactly (:func:`static_levels` or :func:`myopic_levels`); ``forward`` scores each level
    from the state features as minus the distance of its price to the rule's target (both relative to the base
    price), so the MLflow signature (features -> one score per level) holds and its masked argmax is the rule's
    level.

    Args:
        rule: :data:`STATIC` or :data:`MYOPIC`.
        catalog: Prices, guardrails and inventory policy.
        curves: Demand curves fitted on the training history (the myopic rule's elasticities and the features).
    """

    def __init__(self, rule: str, catalog: Catalog, curves: DemandCurves) -> None:
        if rule not in RULES:
            raise ValueError(f"unknown pricing baseline {rule!r}; expected one of {', '.join(RULES)}")
        super().__init__(catalog, curves, hidden=4)  # the network is unused: a rule has no weights
        self.rule = rule
        self.target = myopic_target(catalog, curves)

    def act(self, rows: np.ndarray, day: np.ndarray, inventory: np.ndarray, last_price: np.ndarray) -> np.ndarray:
        rows, last = np.asarray(rows, dtype=np.int64), np.asarray(last_price, dtype=float)
        if self.rule == STATIC:
            return static_levels(self.catalog, rows, last)
        return myopic_levels(self.catalog, self.target, rows, last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        multipliers = torch.as_tensor(self.catalog.multipliers, dtype=x.dtype, device=x.device)
        lo, hi = x[:, _FLOOR : _FLOOR + 1], x[:, _CEILING : _CEILING + 1]
        ratio = torch.minimum(torch.maximum(multipliers[None, :], lo), hi)  # each level's price / base price
        if self.rule == STATIC:
            reference = float(self.catalog.multipliers[self.catalog.reference_level])
            goal = torch.minimum(torch.maximum(torch.full_like(lo, reference), lo), hi)
        else:
            goal = x[:, _MYOPIC : _MYOPIC + 1]
        return -(ratio - goal).abs()
