"""The pricing simulator: guardrailed price levels, Poisson demand, inventory with periodic restocking, profit reward.

One *product-episode* is a run of days for one product. Each day, after any restock, the policy picks one of ``K``
price levels (multipliers of the base price, e.g. 0.70, 0.76, ..., 1.30, clipped to the guardrails); demand is
``Poisson(curves.mean(price, day))``, sales are ``min(demand, inventory)`` (unmet demand is lost) and the reward is
``(price - cost) * sales - holding_rate * cost * inventory left at the end of the day``. Inventory is refilled to the
product's order-up-to level every ``restock_every`` days (on calendar days whose number since 1970-01-01 is a
multiple of it, so restocks fall on the same weekday for a weekly cycle).

Guardrails (:class:`Catalog`): every price lies in ``[floor, ceiling]`` with ``floor = cost / (1 - min_margin)``
and ``ceiling = max(max_price_ratio * base_price, floor)`` (the floor wins where the two cross: never sell below the
margin floor), and a level may only be chosen if its price is within ``max_daily_change`` of the previous day's
price. :class:`PricingSim` steps many product-episodes at once with NumPy (the DQN trains on it);
:mod:`pipelines.models.pricing.gym_env` wraps one product as a Gymnasium environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from pipelines.models.pricing.demand import DemandCurves, day_numbers

_TOL = 1e-9


@dataclass(frozen=True)
class Guardrails:
    """Business limits every price must respect.

    Attributes:
        min_margin: Minimum margin on the price, ``(price - cost) / price``; sets the floor ``cost / (1 - m)``.
        max_price_ratio: Ceiling as a multiple of the base price.
        max_daily_change: Largest relative change from the previous day's price.
    """

    min_margin: float = 0.10
    max_price_ratio: float = 1.25
    max_daily_change: float = 0.10


@dataclass
class Catalog:
    """Per-product prices, guardrails and inventory policy of the simulator (arrays in catalogue order)."""

    product_ids: np.ndarray
    base_price: np.ndarray
    cost: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    multipliers: np.ndarray
    prices: np.ndarray
    """``(products, levels)``: price of each level, ``clip(multiplier * base, floor, ceiling)``."""
    order_up_to: np.ndarray
    """Units on hand after each restock."""
    max_daily_change: float
    restock_every: int
    holding_rate: float
    """Holding cost per unit and day, as a fraction of the unit cost."""

    @property
    def n_products(self) -> int:
        return len(self.product_ids)

    @property
    def n_levels(self) -> int:
        return len(self.multipliers)

    @property
    def reference_level(self) -> int:
        """Level closest to the base price (where episodes start and static pricing stays)."""
        return int(np.argmin(np.abs(self.multipliers - 1.0)))

    def allowed(self, rows: np.ndarray, last_price: np.ndarray) -> np.ndarray:
        """``(n, levels)`` mask of the levels reachable from ``last_price`` under the daily-change limit.

        A level's price always lies within the floor and ceiling. When no level is within the change limit (the
        last price came from outside the simulator, e.g. a promotion below the floor), the level closest to the last
        price is the only one allowed: the smallest move back inside the guardrails.
        """
        prices = self.prices[rows]
        last = np.asarray(last_price, dtype=float)[:, None]
        ok = np.abs(prices / last - 1.0) <= self.max_daily_change + _TOL
        none = ~ok.any(axis=1)
        if none.any():
            closest = np.argmin(np.abs(prices[none] - last[none]), axis=1)
            ok[np.flatnonzero(none), closest] = True
        return ok

    def closest_allowed(self, rows: np.ndarray, last_price: np.ndarray, requested: np.ndarray) -> np.ndarray:
        """The allowed level whose price is closest to the requested level's (ties go to the lower price)."""
        prices = self.prices[rows]
        want = prices[np.arange(len(rows)), np.clip(requested, 0, self.n_levels - 1)]
        gap = np.where(self.allowed(rows, last_price), np.abs(prices - want[:, None]), np.inf)
        return np.argmin(gap, axis=1)

    def guard(self, rows: np.ndarray, price: np.ndarray, last_price: np.ndarray | None = None) -> np.ndarray:
        """Clip prices into the guardrails: the change band around ``last_price`` where it meets ``[floor, ceiling]``.

        The floor and ceiling always hold; the change limit holds whenever it can (the band meets the interval).
        """
        lo, hi = self.floor[rows], self.ceiling[rows]
        if last_price is not None:
            last = np.asarray(last_price, dtype=float)
            band_lo = np.maximum(lo, last * (1 - self.max_daily_change))
            band_hi = np.minimum(hi, last * (1 + self.max_daily_change))
            feasible = band_lo <= band_hi
            lo, hi = np.where(feasible, band_lo, lo), np.where(feasible, band_hi, hi)
        return np.clip(np.asarray(price, dtype=float), lo, hi)

    def level_of_price(self, rows: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Nearest multiplier level of ``price / base_price`` (bins arbitrary prices, e.g. logged ones)."""
        ratio = np.asarray(price, dtype=float) / self.base_price[rows]
        return np.argmin(np.abs(ratio[:, None] - self.multipliers[None, :]), axis=1)

    def days_to_restock(self, days) -> np.ndarray:
        """Days the stock on hand must last, today included (``restock_every`` on a restock day).

        ``days``: a DatetimeIndex or day numbers since 1970-01-01 (any shape).
        """
        return self.restock_every - day_numbers(days) % self.restock_every

    def is_restock_day(self, days) -> np.ndarray:
        return day_numbers(days) % self.restock_every == 0


def poisson_ppf(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Inverse CDF of the Poisson distribution (exact; several times faster than ``scipy.stats.poisson.ppf``).

    Starts from the normal approximation and walks to the smallest ``k`` with ``P(D <= k) >= u``.
    """
    from scipy.special import ndtri, pdtr

    u, mean = np.broadcast_arrays(np.clip(np.asarray(u, dtype=float), 0.0, 1.0 - 1e-12),
                                  np.asarray(mean, dtype=float))
    k = np.maximum(np.floor(mean + np.sqrt(mean) * ndtri(u)), 0.0)
    while True:
        low = pdtr(k, mean) < u
        if not low.any():
            break
        k = k + low
    while True:
        high = (k > 0) & (pdtr(k - 1, mean) >= u)
        if not high.any():
            break
        k = k - high
    return k.astype(np.int64)


def expected_sales(mean: np.ndarray, inventory: np.ndarray) -> np.ndarray:
    """``E[min(D, n)]`` for ``D ~ Poisson(mean)``: ``mean * P(D <= n - 2) + n * P(D >= n)``."""
    from scipy.special import pdtr

    n = np.asarray(inventory, dtype=float)
    cdf = lambda k: np.where(k >= 0, pdtr(np.maximum(k, 0), mean), 0.0)  # noqa: E731
    return mean * cdf(n - 2) + n * (1.0 - cdf(n - 1))


def make_catalog(products: pd.DataFrame, order_up_to: np.ndarray, guardrails: Guardrails, n_levels: int = 11,
                 min_multiplier: float = 0.7, max_multiplier: float = 1.3, restock_every: int = 7,
                 holding_rate: float = 0.005) -> Catalog:
    """Price levels and guardrails of each product of ``products`` (columns ``product_id, base_price, cost``)."""
    base = products["base_price"].to_numpy(dtype=float)
    cost = products["cost"].to_numpy(dtype=float)
    if not 0 <= guardrails.min_margin < 1:
        raise ValueError("min_margin must lie in [0, 1)")
    floor = cost / (1.0 - guardrails.min_margin)
    ceiling = np.maximum(guardrails.max_price_ratio * base, floor)
    multipliers = np.linspace(min_multiplier, max_multiplier, n_levels)
    prices = np.clip(base[:, None] * multipliers[None, :], floor[:, None], ceiling[:, None])
    return Catalog(
        product_ids=products["product_id"].astype(str).to_numpy().astype(object),
        base_price=base, cost=cost, floor=floor, ceiling=ceiling, multipliers=multipliers, prices=prices,
        order_up_to=np.maximum(np.asarray(order_up_to, dtype=np.int64), 1),
        max_daily_change=float(guardrails.max_daily_change), restock_every=int(restock_every),
        holding_rate=float(holding_rate),
    )


@dataclass
class SimState:
    """What a policy sees at the start of a day, after any restock (one entry per product-episode)."""

    rows: np.ndarray
    """Product index of each episode."""
    t: np.ndarray
    """Position of today in the simulator's calendar."""
    day: np.ndarray
    """Today as a day number since 1970-01-01 (see :func:`pipelines.models.pricing.demand.day_numbers`)."""
    inventory: np.ndarray
    level: np.ndarray
    """Yesterday's price level."""
    last_price: np.ndarray


@dataclass
class StepResult:
    level: np.ndarray
    price: np.ndarray
    demand: np.ndarray
    units: np.ndarray
    reward: np.ndarray
    stockout: np.ndarray
    expected_reward: np.ndarray
    """Reward in expectation over the day's demand given the state and price (same units as ``reward``)."""


class PricingSim:
    """Many product-episodes stepped together over a calendar of days.

    Args:
        catalog: Prices, guardrails and inventory policy.
        curves: Demand curves the simulator draws from (the truth, or fitted curves).
        calendar: Every day an episode may visit; episodes index it by position.
        rows: Product index of each episode (a product may appear several times).
        seed: Seed of the demand draws when no uniforms are passed to :meth:`step`.
    """

    def __init__(self, catalog: Catalog, curves: DemandCurves, calendar: pd.DatetimeIndex, rows: np.ndarray,
                 seed: int = 0) -> None:
        self.catalog, self.curves = catalog, curves
        self.calendar = pd.DatetimeIndex(calendar)
        self.days = day_numbers(self.calendar)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.season = curves.season(self.calendar)
        self.restock = catalog.is_restock_day(self.days)
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(len(self.rows), dtype=np.int64)
        self.inventory = catalog.order_up_to[self.rows].copy()
        self.level = np.full(len(self.rows), catalog.reference_level)

    @property
    def n(self) -> int:
        return len(self.rows)

    def reset(self, t0: np.ndarray, inventory: np.ndarray | None = None, level: np.ndarray | None = None) -> SimState:
        """Start every episode at calendar position ``t0`` (inventory refilled if that day is a restock day)."""
        self.t = np.broadcast_to(np.asarray(t0, dtype=np.int64), (self.n,)).copy()
        full = self.catalog.order_up_to[self.rows]
        inv = full.copy() if inventory is None else np.minimum(np.asarray(inventory, dtype=np.int64), full)
        self.inventory = np.where(self.restock[self.t], full, inv)
        self.level = (np.full(self.n, self.catalog.reference_level) if level is None
                      else np.asarray(level, dtype=np.int64).copy())
        return self.state()

    def state(self) -> SimState:
        return SimState(rows=self.rows, t=self.t.copy(), day=self.days[self.t], inventory=self.inventory.copy(),
                        level=self.level.copy(), last_price=self.catalog.prices[self.rows, self.level])

    def step(self, requested: np.ndarray, uniforms: np.ndarray | None = None) -> tuple[StepResult, SimState]:
        """Play one day: requested levels are moved to the closest allowed level, then demand is drawn.

        Args:
            requested: Level asked for by the policy, per episode.
            uniforms: Optional uniforms in (0, 1) for inverse-CDF demand draws (common random numbers across
                policies); otherwise ``Generator.poisson``.

        Returns:
            The day's outcome and the next state (after the next day's restock, if any).
        """
        cat, rows = self.catalog, self.rows
        last = cat.prices[rows, self.level]
        level = cat.closest_allowed(rows, last, np.asarray(requested, dtype=np.int64))
        price = cat.prices[rows, level]
        mean = self.curves.mean(rows, price, self.season[self.t])
        demand = self.rng.poisson(mean) if uniforms is None else poisson_ppf(uniforms, mean)
        units = np.minimum(demand, self.inventory)
        left = self.inventory - units
        reward = (price - cat.cost[rows]) * units - cat.holding_rate * cat.cost[rows] * left
        sold = expected_sales(mean, self.inventory)
        expected = (price - cat.cost[rows]) * sold - cat.holding_rate * cat.cost[rows] * (self.inventory - sold)
        result = StepResult(level=level, price=price, demand=demand, units=units, reward=reward,
                            stockout=demand > self.inventory, expected_reward=expected)
        self.level = level
        self.t = np.minimum(self.t + 1, len(self.calendar) - 1)
        self.inventory = np.where(self.restock[self.t], cat.order_up_to[rows], left)
        return result, self.state()


Policy = Callable[[SimState, int], np.ndarray]
"""``policy(state, step) -> requested level per episode``; ``step`` counts days from the episode start."""


@dataclass
class Rollout:
    """Outcomes of evaluation episodes, each array ``(seeds, days, products)``."""

    price: np.ndarray
    units: np.ndarray
    demand: np.ndarray
    reward: np.ndarray
    inventory: np.ndarray
    stockout: np.ndarray
    expected_reward: np.ndarray
    """Reward in expectation over each day's demand given the state: same mean as ``reward``, less noise."""

    def profit_per_seed(self) -> np.ndarray:
        """Total reward of each seed's episode, summed over days and products."""
        return self.reward.sum(axis=(1, 2))


def rollout(catalog: Catalog, curves: DemandCurves, calendar: pd.DatetimeIndex, policy: Policy, t0: int,
            horizon: int, seeds: list[int]) -> Rollout:
    """Play every product from calendar position ``t0`` for ``horizon`` days, once per seed.

    Every episode starts full (order-up-to inventory) at the reference price. Demand is drawn by inverse CDF from
    uniforms fixed by the seed, so two policies evaluated with the same seeds face the same demand shocks (common
    random numbers: their profit difference has far less noise than either profit).
    """
    if t0 + horizon > len(calendar):
        raise ValueError(f"episode of {horizon} days from position {t0} overruns the {len(calendar)}-day calendar")
    rows = np.arange(catalog.n_products)
    out = {k: np.zeros((len(seeds), horizon, len(rows))) for k in Rollout.__dataclass_fields__}
    sim = PricingSim(catalog, curves, calendar, rows)
    for s, seed in enumerate(seeds):
        uniforms = np.random.default_rng(seed).random((horizon, len(rows)))
        state = sim.reset(np.full(len(rows), t0))
        for day in range(horizon):
            out["inventory"][s, day] = state.inventory
            result, state = sim.step(policy(state, day), uniforms=uniforms[day])
            for key in ("price", "units", "demand", "reward", "stockout", "expected_reward"):
                out[key][s, day] = getattr(result, key)
    return Rollout(**out)
