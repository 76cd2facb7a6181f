"""The optimal pricing policy under known demand curves: finite-horizon dynamic programming per product.

The state of a product on day ``t`` is (units on hand after any restock, yesterday's price level): the first limits
sales, the second limits today's price through the daily-change guardrail. With ``V_H = 0``,

``V_t(n, i) = max_{k allowed from i}  E[(p_k - c) min(D, n) - h c (n - min(D, n)) + V_{t+1}(n', k)]``

where ``D ~ Poisson(mean_t(p_k))`` and ``n' = n - min(D, n)``, or the order-up-to level if day ``t + 1`` is a restock
day. The expectation over ``D`` is exact: ``E[min(D, n)] = sum_{j<n} P(D > j)``, and ``E[V(n - min(D, n))]`` is a
convolution of the demand pmf with ``V`` (done by FFT for all products and levels at once) plus the stock-out tail
``P(D > n) V(0)``. The resulting policy is optimal in expectation for the simulator in
:mod:`pipelines.models.pricing.simulator`, so its profit is the yardstick of ``profit_ratio_to_oracle``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.models.pricing.demand import DemandCurves
from pipelines.models.pricing.simulator import Catalog, Policy, SimState


@dataclass
class OraclePlan:
    """Optimal decisions of every (day, product, inventory, last level) over one horizon."""

    actions: np.ndarray
    """``(days, products, max inventory + 1, levels)`` int8: optimal level."""
    expected_profit: np.ndarray
    """``(products,)``: expected profit of the optimal policy from a full start at the reference level."""

    def policy(self) -> Policy:
        """The plan as a simulator policy (``step`` indexes the plan's days)."""

        def act(state: SimState, step: int) -> np.ndarray:
            return self.actions[step, state.rows, state.inventory, state.level].astype(np.int64)

        return act


def _groups(stock: np.ndarray, slack: float = 1.5) -> list[np.ndarray]:
    """Products grouped by order-up-to level, so each group's inventory axis is only as long as it needs."""
    order = np.argsort(stock, kind="stable")
    groups, current = [], [order[0]]
    for p in order[1:]:
        if stock[p] > slack * stock[current[0]] + 16:
            groups.append(np.array(current))
            current = []
        current.append(p)
    groups.append(np.array(current))
    return groups


def solve(catalog: Catalog, curves: DemandCurves, days: pd.DatetimeIndex) -> OraclePlan:
    """Backward induction over ``days`` for every product of the catalogue.

    Args:
        catalog: Prices, guardrails and inventory policy.
        curves: The demand curves the simulator uses (the oracle knows them exactly).
        days: The horizon's days, in order (the first day starts full).

    Returns:
        The optimal plan and its expected profit per product.
    """
    days = pd.DatetimeIndex(days)
    stock = catalog.order_up_to
    actions = np.zeros((len(days), catalog.n_products, int(stock.max()) + 1, catalog.n_levels), dtype=np.int8)
    expected = np.zeros(catalog.n_products)
    season = curves.season(days)
    restock = catalog.is_restock_day(days)
    for rows in _groups(stock):
        group_actions, expected[rows] = _solve_group(catalog, curves, rows, season, restock)
        actions[:, rows, : group_actions.shape[2]] = group_actions
    return OraclePlan(actions=actions, expected_profit=expected)


def _solve_group(catalog: Catalog, curves: DemandCurves, rows: np.ndarray, season: np.ndarray,
                 restock: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Backward induction for the products ``rows`` (see the module docstring)."""
    from scipy.special import gammaln

    n_days, n_levels = len(season), catalog.n_levels
    stock = catalog.order_up_to[rows]
    n = np.arange(int(stock.max()) + 1, dtype=float)
    size = 1 << int(np.ceil(np.log2(2 * len(n))))
    prices, cost = catalog.prices[rows], catalog.cost[rows]
    margin = (prices - cost[:, None])[..., None]
    holding = (catalog.holding_rate * cost)[:, None, None]
    # allowed[p, i, k]: level k may follow level i.
    allowed = catalog.allowed(np.repeat(rows, n_levels), prices.ravel()).reshape(len(rows), n_levels, n_levels)
    log_factorial = gammaln(n + 1)
    local = np.arange(len(rows))

    value = np.zeros((len(rows), n_levels, len(n)))  # V_{t+1}[p, k, n]
    actions = np.zeros((n_days, len(rows), len(n), n_levels), dtype=np.int8)
    for t in range(n_days - 1, -1, -1):
        mean = curves.mean(rows[:, None], prices, season[t])
        pmf = np.exp(n * np.log(mean)[..., None] - mean[..., None] - log_factorial)
        tail = np.clip(1.0 - np.cumsum(pmf, axis=-1), 0.0, 1.0)  # P(D > n)
        sold = np.concatenate([np.zeros(tail.shape[:-1] + (1,)), np.cumsum(tail, axis=-1)[..., :-1]], axis=-1)
        q = margin * sold - holding * (n - sold)
        if t + 1 < n_days:
            if restock[t + 1]:
                q += value[local, :, stock][..., None]
            else:
                conv = np.fft.irfft(np.fft.rfft(pmf, size) * np.fft.rfft(value, size), size)[..., : len(n)]
                q += conv + tail * value[..., :1]
        new_value = np.empty_like(value)
        for i in range(n_levels):
            masked = np.where(allowed[:, i, :, None], q, -np.inf)
            best = np.argmax(masked, axis=1)
            actions[t, :, :, i] = best
            new_value[:, i] = np.take_along_axis(masked, best[:, None], axis=1)[:, 0]
        value = new_value
    return actions, value[local, catalog.reference_level, stock]
