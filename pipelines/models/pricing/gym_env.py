"""A Gymnasium view of the pricing simulator: one product, one day per step.

Imports gymnasium at module import, so only import this module where a Gymnasium environment is wanted (the
training pipeline steps :class:`pipelines.models.pricing.simulator.PricingSim` directly, many products at once).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from gymnasium import spaces

from pipelines.models.pricing.demand import DemandCurves, calendar_parts
from pipelines.models.pricing.simulator import Catalog, PricingSim

OBSERVATION = ("dow_sin", "dow_cos", "doy_sin", "doy_cos", "inventory_ratio", "last_price_ratio",
               "days_to_restock_ratio", "cost_ratio")
"""Observation entries: calendar, stock on hand / order-up-to level, yesterday's price / base price, restock
timing and the product's cost / base price."""

ENV_ID = "ShopFlowPricing-v0"


class PricingEnv(gym.Env):
    """Daily pricing of one product: ``Discrete(levels)`` actions, profit rewards, inventory and restocks.

    An action the daily-change guardrail forbids is moved to the closest allowed level (``info["level"]`` is the
    one played); :meth:`action_masks` lists the allowed ones. Episodes last ``episode_days`` days from a start
    drawn uniformly in ``start_range`` (calendar positions), with full stock at the reference price.

    Args:
        catalog: Prices, guardrails and inventory policy.
        curves: Demand curves the environment draws from.
        calendar: Days the environment may visit.
        product: Product index in the catalogue.
        episode_days: Episode length.
        start_range: Inclusive range of start positions (default: anywhere the episode fits).
    """

    metadata = {"render_modes": []}

    def __init__(self, catalog: Catalog, curves: DemandCurves, calendar: pd.DatetimeIndex, product: int = 0,
                 episode_days: int = 28, start_range: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.catalog, self.curves, self.product = catalog, curves, int(product)
        self.calendar = pd.DatetimeIndex(calendar)
        self.episode_days = int(episode_days)
        last = len(self.calendar) - self.episode_days
        if last < 0:
            raise ValueError("calendar shorter than one episode")
        self.start_range = start_range or (0, last)
        self.action_space = spaces.Discrete(catalog.n_levels)
        base = catalog.base_price[self.product]
        low = np.array([-1, -1, -1, -1, 0, 0, 0, 0], dtype=np.float32)
        high = np.array([1, 1, 1, 1, 1, catalog.ceiling[self.product] / base, 1,
                         max(1.0, catalog.cost[self.product] / base)], dtype=np.float32)
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)
        self._sim: PricingSim | None = None
        self._day = 0

    def _observation(self) -> np.ndarray:
        state = self._sim.state()
        cat, p = self.catalog, self.product
        dow, doy = calendar_parts(state.day)
        return np.array([
            np.sin(2 * np.pi * dow[0] / 7), np.cos(2 * np.pi * dow[0] / 7),
            np.sin(2 * np.pi * doy[0] / 365.25), np.cos(2 * np.pi * doy[0] / 365.25),
            state.inventory[0] / cat.order_up_to[p], state.last_price[0] / cat.base_price[p],
            cat.days_to_restock(state.day)[0] / cat.restock_every, cat.cost[p] / cat.base_price[p],
        ], dtype=np.float32)

    def action_masks(self) -> np.ndarray:
        """Levels allowed today (the daily-change guardrail around yesterday's price)."""
        state = self._sim.state()
        return self.catalog.allowed(state.rows, state.last_price)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        lo, hi = self.start_range
        t0 = int(self.np_random.integers(lo, hi + 1))
        self._sim = PricingSim(self.catalog, self.curves, self.calendar, np.array([self.product]),
                               seed=int(self.np_random.integers(2**31)))
        self._sim.reset(np.array([t0]))
        self._day = 0
        return self._observation(), {"date": str(self.calendar[t0].date())}

    def step(self, action):
        if self._sim is None:
            raise RuntimeError("call reset() before step()")
        result, _ = self._sim.step(np.array([int(action)]))
        self._day += 1
        info = {"level": int(result.level[0]), "price": float(result.price[0]), "units": int(result.units[0]),
                "demand": int(result.demand[0]), "stockout": bool(result.stockout[0])}
        return self._observation(), float(result.reward[0]), False, self._day >= self.episode_days, info


def register() -> None:
    """Register :data:`ENV_ID` (``gym.make(ENV_ID, catalog=..., curves=..., calendar=...)``); idempotent."""
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point=f"{__name__}:PricingEnv")
