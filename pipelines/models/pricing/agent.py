"""The DQN pricing agent: one Q-network shared by every product, trained on the vectorised simulator.

:class:`PricingPolicy` is the logged model. It is a ``torch.nn.Module`` (``forward(features) -> Q-values``, one per
price level) that also carries everything needed to act: the catalogue (prices, guardrails, inventory policy) and
the demand curves fitted on the training history, from which the state features are computed. ``price(product_id,
context)`` returns a price that always lies within the guardrails.

The Q-function is structured (see :meth:`PricingPolicy.forward`): the estimated immediate profit of each level
(from the fitted curves) minus a learned *shadow price of stock* times the level's expected units, plus a learned
state value. Training (:func:`train_dqn`) is Double DQN on that Q-function with action masking (levels the
daily-change limit forbids are never chosen nor bootstrapped from), a replay buffer, Huber loss, a Polyak-averaged
target network, epsilon-greedy exploration and a decaying learning rate. Rewards are divided by each product's
typical daily revenue so that one network serves a 1-dollar and a 300-dollar product alike. The weights (the
untrained, myopic start included) with the best expected profit on validation episodes in the season before the
holdout are kept.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from pipelines.models.pricing.demand import DemandCurves, calendar_parts, day_numbers
from pipelines.utils import torch_threads
from pipelines.models.pricing.simulator import Catalog, PricingSim, SimState, rollout

log = logging.getLogger(__name__)

BASE_FEATURES = (
    "elasticity_est", "cost_ratio", "floor_ratio", "ceiling_ratio", "last_price_ratio", "inventory_ratio",
    "days_to_restock_ratio", "log_demand_to_restock", "log_cover", "log_season", "log_order_up_to",
    "myopic_price_ratio", "dow_sin", "dow_cos", "doy_sin", "doy_cos",
)
"""State features before the per-level expected profits (``est_profit_<k>``)."""


class PricingPolicy(nn.Module):
    """Shared Q-network over price levels, with the state featurisation and guardrails it acts under.

    Args:
        catalog: Prices, guardrails and inventory policy of every product.
        curves: Demand curves fitted on the training history (the policy never sees the truth).
        hidden: Width of the two hidden layers.
    """

    def __init__(self, catalog: Catalog, curves: DemandCurves, hidden: int = 64) -> None:
        super().__init__()
        self.catalog = catalog
        self.curves = curves
        self.index = {pid: i for i, pid in enumerate(catalog.product_ids)}
        self.feature_names = [*BASE_FEATURES, *(f"est_profit_{k}" for k in range(catalog.n_levels)),
                              *(f"est_units_{k}" for k in range(catalog.n_levels))]
        self.training_summary: dict[str, Any] = {}
        self.history: dict[str, list] = {}
        self.net = _ShadowPriceNet(len(self.feature_names), hidden)
        self.refresh()

    def refresh(self) -> None:
        """Recompute the per-product arrays derived from the catalogue and curves (call after editing them)."""
        cat, cur = self.catalog, self.curves
        # Typical revenue per day at the base price: the unit of the rewards and of the profit features.
        self.reward_scale = np.maximum(cat.base_price * cur.scale * cur.mean_season(), 1e-6)
        e = cur.elasticity
        myopic = np.where(e < -1, cat.cost * e / np.minimum(1 + e, -1e-9), np.inf)
        self.myopic_price = np.clip(myopic, cat.floor, cat.ceiling)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Q-value of each price level for a batch of feature rows.

        ``Q(s, a) = est_profit_a(s) - lambda(s) * est_units_a(s) + V(s)``. The estimated immediate profit of each
        level comes from the fitted curves (features); the network learns two numbers per state: ``V``, the
        discounted value of the future, and ``lambda``, the *shadow price* of a unit of stock as a fraction of the
        base price (what selling a unit today costs in lost future sales before the next restock, minus the holding
        cost it saves). The greedy price thus maximises ``(price - cost - lambda * base) * expected units``: the
        structure of optimal inventory-constrained pricing, with one learned scalar instead of one free output per
        level, which keeps TD noise from reshuffling levels whose profits differ by a fraction of a percent. Both
        heads start at zero, so the untrained agent prices myopically from the fitted curves.
        """
        return self.q_from(self.net, x)

    def q_from(self, net: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Q-values with the heads of ``net`` (the online network or a target copy of it)."""
        k = self.catalog.n_levels
        value, shadow = net(x)
        return x[:, -2 * k:-k] - shadow * x[:, -k:] + value

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ state features
    def features(self, rows: np.ndarray, day: np.ndarray, inventory: np.ndarray,
                 last_price: np.ndarray) -> np.ndarray:
        """``(n, n_features)`` float32 features of products ``rows`` on days ``day`` (day numbers since 1970-01-01).

        One row per decision; see :data:`BASE_FEATURES`, followed by the estimated profit of each level today
        (fitted curves, sales capped at the stock on hand, in units of the product's typical daily revenue).
        """
        cat, cur = self.catalog, self.curves
        rows = np.asarray(rows, dtype=np.int64)
        day = np.asarray(day, dtype=np.int64)
        base, cost, full = cat.base_price[rows], cat.cost[rows], cat.order_up_to[rows].astype(float)
        inv = np.clip(np.asarray(inventory, dtype=float), 0.0, full)
        last = np.asarray(last_price, dtype=float)
        e = cur.elasticity[rows]
        period = cat.restock_every
        left = cat.days_to_restock(day)
        ahead = np.arange(period)
        season = cur.season(day[:, None] + ahead[None, :])
        demand_to_restock = (cur.scale[rows] * (last / base) ** e
                             * np.where(ahead[None, :] < left[:, None], season, 0.0).sum(axis=1))
        dow, doy = calendar_parts(day)
        dow, doy = 2 * np.pi * dow / 7, 2 * np.pi * doy / 365.25
        prices = cat.prices[rows]
        today = cur.mean(rows[:, None], prices, season[:, :1])
        # Units in base-price money, so that lambda below is a fraction of the base price.
        est_units = np.minimum(today, inv[:, None]) * base[:, None] / self.reward_scale[rows, None]
        est_profit = (prices / base[:, None] - cost[:, None] / base[:, None]) * est_units
        cols = [
            e / 2, cost / base, cat.floor[rows] / base, cat.ceiling[rows] / base, last / base, inv / full,
            left / period, np.log1p(demand_to_restock) / 5, np.log((inv + 1) / (demand_to_restock + 1)) / 3,
            np.log(season[:, 0]), np.log1p(full) / 6, self.myopic_price[rows] / base,
            np.sin(dow), np.cos(dow), np.sin(doy), np.cos(doy),
        ]
        return np.column_stack([*cols, est_profit, est_units]).astype(np.float32)

    def state_features(self, state: SimState) -> tuple[np.ndarray, np.ndarray]:
        """Features and allowed-level mask of a simulator state."""
        feats = self.features(state.rows, state.day, state.inventory, state.last_price)
        return feats, self.catalog.allowed(state.rows, state.last_price)

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def q_values(self, feats: np.ndarray) -> np.ndarray:
        """Q-values of feature rows, as a NumPy array."""
        with _one_cpu_thread(self.device):
            return self(torch.as_tensor(feats, device=self.device)).float().cpu().numpy()

    def act(self, rows: np.ndarray, day: np.ndarray, inventory: np.ndarray, last_price: np.ndarray) -> np.ndarray:
        """Greedy level among the allowed ones for each decision (``day``: day numbers since 1970-01-01)."""
        q = self.q_values(self.features(rows, day, inventory, last_price))
        allowed = self.catalog.allowed(np.asarray(rows, dtype=np.int64), np.asarray(last_price, dtype=float))
        return np.argmax(np.where(allowed, q, -np.inf), axis=1)

    def as_policy(self):
        """The greedy policy as a simulator policy."""

        def policy(state: SimState, step: int) -> np.ndarray:
            return self.act(state.rows, state.day, state.inventory, state.last_price)

        return policy

    def prices(self, frame: pd.DataFrame) -> np.ndarray:
        """Guardrailed prices for a batch of decisions.

        Args:
            frame: Column ``product_id`` and optionally ``date`` (default: today, UTC), ``inventory`` (units on hand
                after any restock today; default: the order-up-to level; clipped to ``[0, order-up-to]``) and
                ``last_price`` (yesterday's price; default: the base price clipped to the guardrails). Missing or
                invalid values take the defaults.

        Returns:
            One price per row, always within ``[floor, ceiling]`` and within the daily-change limit of
            ``last_price`` whenever that limit can be met.

        Raises:
            KeyError: naming unknown product ids.
        """
        ids = frame["product_id"].astype(str)
        unknown = sorted(set(ids) - set(self.index))
        if unknown:
            raise KeyError(f"unknown product ids (not in the model's catalogue): {unknown[:10]}")
        rows = ids.map(self.index).to_numpy(dtype=np.int64)
        cat = self.catalog
        today = pd.Timestamp.now(tz="UTC").normalize()
        dates = pd.to_datetime(frame["date"], utc=True, errors="coerce") if "date" in frame else None
        dates = pd.DatetimeIndex(dates).fillna(today) if dates is not None else pd.DatetimeIndex([today] * len(rows))
        full = cat.order_up_to[rows].astype(float)
        inv = pd.to_numeric(frame["inventory"], errors="coerce").to_numpy(float) if "inventory" in frame else full
        inv = np.where(np.isfinite(inv), inv, full)
        reference = cat.prices[rows, cat.reference_level]
        last = (pd.to_numeric(frame["last_price"], errors="coerce").to_numpy(float) if "last_price" in frame
                else reference)
        last = np.where(np.isfinite(last) & (last > 0), last, reference)
        level = self.act(rows, day_numbers(dates), inv, last)
        return cat.guard(rows, cat.prices[rows, level], last)

    def price(self, product_id: str, context: dict[str, Any] | None = None) -> float:
        """Guardrailed price of one product for one day.

        Args:
            product_id: A product of the model's catalogue.
            context: Optional ``date``, ``inventory`` and ``last_price`` (see :meth:`prices`).

        Returns:
            The price, within ``[floor, ceiling]`` and the daily-change limit of ``last_price`` when it can be met.
        """
        row = {"product_id": product_id, **(context or {})}
        return float(self.prices(pd.DataFrame([row]))[0])

    def guardrails(self, product_id: str) -> dict[str, float]:
        """Floor, ceiling and daily-change limit of one product."""
        row = self.index[str(product_id)]
        return {"floor": float(self.catalog.floor[row]), "ceiling": float(self.catalog.ceiling[row]),
                "max_daily_change": self.catalog.max_daily_change}


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device | str = "cpu"):
    """Run torch on one CPU thread: for this tiny network, thread synchronisation costs far more than the matrix
    products (50x slower with 2 threads on a busy 2-core machine), and one thread makes results reproducible."""
    if torch.device(device).type != "cpu":
        yield
        return
    with torch_threads(1):
        yield


class _ShadowPriceNet(nn.Module):
    """MLP body with two zero-initialised scalar heads: state value and shadow price of stock."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.heads = nn.Linear(hidden, 2)
        nn.init.zeros_(self.heads.weight)
        nn.init.zeros_(self.heads.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.heads(self.body(x))
        return out[:, :1], out[:, 1:]


# ---------------------------------------------------------------------- training
@dataclass
class DQNConfig:
    """Hyper-parameters of :func:`train_dqn` (see ``PricingParams`` for their meaning)."""

    steps: int = 1500
    parallel_episodes: int = 256
    episode_days: int = 28
    batch_size: int = 256
    learning_rate: float = 1e-3
    gamma: float = 0.9
    eps_start: float = 0.3
    eps_end: float = 0.05
    exploration_fraction: float = 0.5
    target_tau: float = 0.01
    buffer_size: int = 200_000
    warmup: int = 2_000
    val_every: int = 250
    val_seeds: int = 2
    select_best: bool = True
    """Keep the best validated weights (else the last ones)."""
    max_seconds: float = 120.0
    seed: int = 42


@dataclass
class TrainHistory:
    """What happened during training (for the reward-curve plot and the run's metrics)."""

    step_reward: list[float] = field(default_factory=list)
    """Mean normalised reward of each simulator step (exploration included)."""
    val_steps: list[int] = field(default_factory=list)
    val_profit: list[float] = field(default_factory=list)
    """Expected profit of the greedy policy on the validation episodes at each check (step 0: untrained)."""
    best_step: int = 0
    transitions: int = 0
    seconds: float = 0.0
    stopped_early: bool = False


class _Replay:
    """Fixed-size ring buffer of transitions, kept on the training device."""

    def __init__(self, size: int, n_features: int, n_levels: int, device: torch.device) -> None:
        self.size, self.count, self.pos = size, 0, 0
        self.s = torch.zeros((size, n_features), device=device)
        self.a = torch.zeros((size, 1), dtype=torch.long, device=device)
        self.r = torch.zeros((size, 1), device=device)
        self.s2 = torch.zeros((size, n_features), device=device)
        self.m2 = torch.zeros((size, n_levels), dtype=torch.bool, device=device)

    def add(self, s, a, r, s2, m2) -> None:
        n = len(a)
        dev = self.s.device
        idx = ((self.pos + torch.arange(n)) % self.size).to(dev)
        self.s[idx] = torch.as_tensor(s, device=dev)
        self.a[idx, 0] = torch.as_tensor(a, dtype=torch.long, device=dev)
        self.r[idx, 0] = torch.as_tensor(r, dtype=torch.float32, device=dev)
        self.s2[idx] = torch.as_tensor(s2, device=dev)
        self.m2[idx] = torch.as_tensor(m2, device=dev)
        self.pos = (self.pos + n) % self.size
        self.count = min(self.count + n, self.size)

    def sample(self, batch: int, generator: torch.Generator):
        idx = torch.randint(0, self.count, (batch,), generator=generator).to(self.s.device)
        return self.s[idx], self.a[idx], self.r[idx], self.s2[idx], self.m2[idx]


def train_dqn(policy: PricingPolicy, curves: DemandCurves, calendar: pd.DatetimeIndex, start_range: tuple[int, int],
              validation: tuple[int, int], config: DQNConfig, device: str = "cpu") -> TrainHistory:
    """Train ``policy`` in place on simulated episodes starting inside ``start_range`` (calendar positions).

    Args:
        policy: The agent; its catalogue and fitted curves define the features.
        curves: Demand curves of the simulator the agent learns and is validated in (the family passes the
            curves fitted on the training history, never the truth).
        calendar: Days of the simulator.
        start_range: Inclusive range of episode start positions (must leave ``episode_days`` before its end).
        validation: ``(start position, days)`` of the validation episodes that pick the best weights.
        config: Hyper-parameters.
        device: Torch device.

    Returns:
        The training history; ``policy`` holds the best validated weights.
    """
    with _one_cpu_thread(device):
        return _train_dqn(policy, curves, calendar, start_range, validation, config, device)


def _train_dqn(policy: PricingPolicy, curves: DemandCurves, calendar: pd.DatetimeIndex,
               start_range: tuple[int, int], validation: tuple[int, int], config: DQNConfig,
               device: str) -> TrainHistory:
    import torch.nn.functional as F

    t_start = time.perf_counter()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    cat = policy.catalog
    policy.to(device)
    target = copy.deepcopy(policy.net).to(device)
    for p in target.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(policy.net.parameters(), lr=config.learning_rate)
    # Linear decay to a tenth of the rate: late updates refine rather than re-shuffle the greedy choices.
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 - 0.9 * min(k / max(config.steps, 1), 1.0))
    copies = max(1, -(-config.parallel_episodes // cat.n_products))
    rows = np.tile(np.arange(cat.n_products), copies)
    sim = PricingSim(cat, curves, calendar, rows, seed=config.seed)
    lo, hi = start_range
    replay = _Replay(config.buffer_size, len(policy.feature_names), cat.n_levels, torch.device(device))
    # Validation: the season just before the holdout, fixed seeds (model selection never looks at the holdout).
    val_start, val_days = validation
    history = TrainHistory()

    def new_episodes() -> SimState:
        inventory = np.round(rng.uniform(0.2, 1.0, sim.n) * cat.order_up_to[rows])
        return sim.reset(rng.integers(lo, hi + 1, sim.n), inventory, rng.integers(0, cat.n_levels, sim.n))

    def validate() -> float:
        policy.eval()
        total = 0.0
        # Expected rewards along the trajectories: the same mean as realised profit with less noise.
        seeds = [config.seed + 10_000 + k for k in range(config.val_seeds)]
        total += float(rollout(cat, curves, calendar, policy.as_policy(), val_start, val_days,
                               seeds).expected_reward.sum())
        policy.train()
        return total

    # The untrained network prices myopically from the fitted curves (see forward): training must beat that.
    best_state, best_val = copy.deepcopy(policy.net.state_dict()), validate()
    history.val_steps.append(0)
    history.val_profit.append(best_val)
    state = new_episodes()
    feats, mask = policy.state_features(state)
    explore_steps = max(1, int(config.exploration_fraction * config.steps))
    for step in range(config.steps):
        eps = config.eps_end + (config.eps_start - config.eps_end) * max(0.0, 1 - step / explore_steps)
        q = policy.q_values(feats)
        greedy = np.argmax(np.where(mask, q, -np.inf), axis=1)
        random_level = np.argmax(rng.random(mask.shape) * mask, axis=1)
        action = np.where(rng.random(sim.n) < eps, random_level, greedy)
        result, next_state = sim.step(action)
        next_feats, next_mask = policy.state_features(next_state)
        reward = result.reward / policy.reward_scale[rows]
        # Episodes are truncated, not terminated: the target always bootstraps.
        replay.add(feats, result.level, reward, next_feats, next_mask)
        history.step_reward.append(float(reward.mean()))
        history.transitions += sim.n
        if (step + 1) % config.episode_days == 0:
            next_state = new_episodes()
            next_feats, next_mask = policy.state_features(next_state)
        feats, mask = next_feats, next_mask

        if replay.count >= config.warmup:
            s, a, r, s2, m2 = replay.sample(config.batch_size, gen)
            # One pass of the online network over s and s2 (Double DQN picks the next action with it).
            q_both = policy(torch.cat([s, s2]))
            q_sa, q_next = q_both[: len(s)].gather(1, a), q_both[len(s):].detach()
            with torch.no_grad():
                best_next = q_next.masked_fill(~m2, -torch.inf).argmax(dim=1, keepdim=True)
                y = r + config.gamma * policy.q_from(target, s2).gather(1, best_next)
            loss = F.smooth_l1_loss(q_sa, y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.net.parameters(), 10.0)
            opt.step()
            sched.step()
            with torch.no_grad():
                for tp, p in zip(target.parameters(), policy.net.parameters(), strict=True):
                    tp.lerp_(p, config.target_tau)

        last = step + 1 == config.steps
        out_of_time = time.perf_counter() - t_start > config.max_seconds
        if (step + 1) % config.val_every == 0 or last or out_of_time:
            val = validate()
            history.val_steps.append(step + 1)
            history.val_profit.append(val)
            if val > best_val or not config.select_best:
                best_val, history.best_step = val, step + 1
                best_state = copy.deepcopy(policy.net.state_dict())
        if out_of_time and not last:
            log.warning("DQN stopped after %d of %d steps: max_train_seconds=%.0f reached (results are no longer "
                        "reproducible run to run)", step + 1, config.steps, config.max_seconds)
            history.stopped_early = True
            break
    policy.net.load_state_dict(best_state)
    policy.eval()
    history.seconds = time.perf_counter() - t_start
    policy.training_summary = {"best_step": history.best_step, "transitions": history.transitions,
                               "seconds": round(history.seconds, 2), "stopped_early": history.stopped_early}
    return history
