"""The global quantile forecaster: a windowed MLP encoder and a per-step decoder shared by all products.

Packed input (one float32 row per (product, origin), so the network logs as a plain tensor model and can be
exported with ``torch.export``), for a lag window ``L``, horizon ``H`` and ``C`` calendar covariates::

    [ units[t-L:t] / s                 (L)   history scaled by s = 1 + mean units in the window
    | log(price[t-L:t] / r)            (L)   history prices relative to r = mean price in the window
    | log(s)                           (1)   sales level
    | product index                    (1)   1-based row of the product embedding; 0 = unknown product
    | H x (log(price[t+h] / r), calendar[t+h] (C)) ]   known future prices and calendar of each step

Output: ``(rows, H, 3)`` units at P10, P50, P90, non-negative and ordered by construction
(``P50 = softplus``, ``P10 = P50 * sigmoid``, ``P90 = P50 + softplus``), times ``s * (price[t+h] / r) ** e``
where the elasticity ``e`` is read from the context plus a per-product offset (a log-log demand curve).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from pipelines.models.forecasting.metrics import QUANTILES
from pipelines.utils import torch_threads

log = logging.getLogger(__name__)


def input_width(lags: int, horizon: int, n_cal: int) -> int:
    """Columns of the packed input."""
    return 2 * lags + 2 + horizon * (1 + n_cal)


def pack_inputs(units: np.ndarray, price: np.ndarray, calendar: np.ndarray, product_index: np.ndarray,
                rows: np.ndarray, origins: np.ndarray, lags: int, horizon: int) -> np.ndarray:
    """Packed network inputs for (series ``rows[k]``, origin ``origins[k]``) pairs.

    Args:
        units: ``(series, periods)`` units; only ``[origin - lags, origin)`` of each pair is read.
        price: ``(series, periods)`` prices; ``[origin - lags, origin + horizon)`` is read (future prices are
            set by the shop, hence known).
        calendar: ``(periods, C)`` calendar covariates.
        product_index: ``(series,)`` embedding row of each series (0 = unknown).
        rows, origins: Pairs to pack, same length.
        lags, horizon: Window sizes.

    Returns:
        ``(len(rows), input_width(...))`` float32 array.
    """
    rows = np.asarray(rows)
    origins = np.asarray(origins)
    past = origins[:, None] + np.arange(-lags, 0)[None, :]
    future = origins[:, None] + np.arange(horizon)[None, :]
    y = units[rows[:, None], past]
    s = 1.0 + y.mean(axis=1)
    p_past = price[rows[:, None], past]
    ref = p_past.mean(axis=1)
    fut_price = np.log(price[rows[:, None], future] / ref[:, None])
    fut = np.concatenate([fut_price[..., None], calendar[future]], axis=2).reshape(len(rows), -1)
    packed = np.concatenate([
        y / s[:, None], np.log(p_past / ref[:, None]), np.log(s)[:, None],
        product_index[rows].astype(np.float64)[:, None], fut,
    ], axis=1)
    return packed.astype(np.float32)


class ForecastNet(nn.Module):
    """Global multi-horizon quantile network (see the module docstring for the input layout).

    Args:
        lags: Input window ``L``.
        horizon: Forecast steps ``H``.
        n_cal: Calendar covariates per step ``C``.
        n_products: Known products (the embedding has one more row, 0, for unknown products).
        hidden: Width of the encoder output and decoder.
        embedding_dim: Product embedding size (0 disables it).
        dropout: Dropout in the encoder (training only).
    """

    def __init__(self, lags: int, horizon: int, n_cal: int, n_products: int, hidden: int = 64,
                 embedding_dim: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.lags, self.horizon, self.n_cal, self.embedding_dim = lags, horizon, n_cal, embedding_dim
        self.embedding = nn.Embedding(n_products + 1, embedding_dim) if embedding_dim else None
        self.encoder = nn.Sequential(
            nn.Linear(2 * lags + 1 + n_cal + embedding_dim, 2 * hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(2 * hidden, hidden), nn.ReLU(),
        )
        # Per-step decoder shared over the horizon: sees the context, that step's calendar and its position. Its
        # first layer is split into a context part (once per row) and a step part (per step), which equals one
        # layer on the concatenation without materialising (rows x H x hidden) inputs.
        self.decoder_context = nn.Linear(hidden, hidden)
        self.decoder_step = nn.Linear(n_cal + 1, hidden, bias=False)
        self.decoder_out = nn.Sequential(nn.ReLU(), nn.Linear(hidden, 3))
        # Price enters as a log-log demand curve, q * (p / r) ** elasticity, with the elasticity read from the
        # context (so from the product embedding and its own price history). A free-form price input learnt a
        # response several times too weak; the structural form also makes the price effect monotone per product.
        self.elasticity = nn.Linear(hidden, 1)
        nn.init.zeros_(self.elasticity.weight)
        nn.init.constant_(self.elasticity.bias, -1.0)  # a typical retail elasticity as the starting point
        # Plus a direct per-product offset: identifying each product's own elasticity through the encoder alone
        # proved weak. Row 0 (unknown products) stays at 0, i.e. the context-based elasticity.
        self.product_elasticity = nn.Embedding(n_products + 1, 1, padding_idx=0) if embedding_dim else None
        if self.product_elasticity is not None:
            nn.init.zeros_(self.product_elasticity.weight)
        self.register_buffer("step_position", (torch.arange(horizon, dtype=torch.float32) / horizon)[None, :, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantile forecasts ``(rows, H, 3)`` in units from packed inputs ``(rows, width)``."""
        lags, horizon = self.lags, self.horizon
        y, lp = x[:, :lags], x[:, lags:2 * lags]
        log_s = x[:, 2 * lags:2 * lags + 1]
        fut = x[:, 2 * lags + 2:].reshape(x.shape[0], horizon, 1 + self.n_cal)
        parts = [y, lp, log_s, fut[:, 0, 1:]]
        pid = x[:, 2 * lags + 1].long()
        if self.embedding is not None:
            parts.append(self.embedding(pid))
        context = self.encoder(torch.cat(parts, dim=1))
        elasticity = self.elasticity(context)
        if self.product_elasticity is not None:
            elasticity = elasticity + self.product_elasticity(pid)
        steps = torch.cat([fut[:, :, 1:], self.step_position.expand(x.shape[0], -1, -1)], dim=2)
        raw = self.decoder_out(self.decoder_context(context)[:, None, :] + self.decoder_step(steps))
        mid = F.softplus(raw[..., 1])
        low = mid * torch.sigmoid(raw[..., 0])
        high = mid + F.softplus(raw[..., 2])
        price_effect = torch.exp(torch.clamp(elasticity * fut[:, :, 0], -6.0, 6.0))
        return torch.stack([low, mid, high], dim=-1) * (torch.exp(log_s) * price_effect)[:, :, None]


def pinball_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean pinball loss over P10/P50/P90 of targets scaled by each row's ``scale`` (so series weigh alike)."""
    q = torch.tensor(QUANTILES, dtype=pred.dtype, device=pred.device)
    diff = (target[..., None] - pred) / scale[:, None, None]
    return torch.maximum(q * diff, (q - 1) * diff).mean()


LOSS_EVERY = 25
"""Steps per point of the recorded training-loss curve."""


@dataclass
class TrainConfig:
    hidden: int = 64
    embedding_dim: int = 8
    dropout: float = 0.1
    steps: int = 400
    batch_size: int = 512
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    embedding_dropout: float = 0.1
    seed: int = 42
    threads: int = 1
    """Torch CPU threads while training: the network is small, so more threads mostly add sync overhead."""


@dataclass
class TrainResult:
    net: ForecastNet
    losses: list[float] = field(default_factory=list)
    """Mean training loss of each block of ``LOSS_EVERY`` steps."""
    seconds: float = 0.0


def train(units: np.ndarray, price: np.ndarray, calendar: np.ndarray, product_index: np.ndarray,
          rows: np.ndarray, origins: np.ndarray, lags: int, horizon: int, cfg: TrainConfig,
          device: str = "cpu") -> TrainResult:
    """Fit a :class:`ForecastNet` on (series, origin) windows with the pinball loss.

    Inputs are packed batch by batch from the panel (memory stays O(panel), not O(windows)). The product id is
    dropped to 0 (unknown) with probability ``embedding_dropout`` so the unknown-product row is trained too.
    """
    with torch_threads(cfg.threads):
        return _train(units, price, calendar, product_index, rows, origins, lags, horizon, cfg, device)


def _train(units, price, calendar, product_index, rows, origins, lags, horizon, cfg: TrainConfig,
           device: str) -> TrainResult:
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    drop_rng = np.random.default_rng(cfg.seed)
    net = ForecastNet(lags, horizon, calendar.shape[1], int(product_index.max()), cfg.hidden, cfg.embedding_dim,
                      cfg.dropout).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.learning_rate, total_steps=cfg.steps, pct_start=0.2)
    future = np.arange(horizon)[None, :]
    pid_col = 2 * lags + 1
    n = len(rows)
    losses: list[float] = []
    block: list[float] = []
    order = np.empty(0, dtype=np.int64)
    net.train()
    # A fixed number of steps (reshuffling whenever the windows run out) rather than epochs: the cost no longer
    # grows with the catalogue, and small imported data sets still get enough updates.
    for _ in range(cfg.steps):
        if len(order) < min(cfg.batch_size, n):
            order = np.concatenate([order, torch.randperm(n, generator=gen).numpy()])
        idx, order = order[:cfg.batch_size], order[cfg.batch_size:]
        r, o = rows[idx], origins[idx]
        x = pack_inputs(units, price, calendar, product_index, r, o, lags, horizon)
        if cfg.embedding_dim and cfg.embedding_dropout > 0:
            x[drop_rng.random(len(idx)) < cfg.embedding_dropout, pid_col] = 0.0
        y = units[r[:, None], o[:, None] + future].astype(np.float32)
        xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        loss = pinball_loss(net(xt), yt, torch.exp(xt[:, 2 * lags]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        block.append(float(loss.detach()))
        if len(block) == LOSS_EVERY:
            losses.append(float(np.mean(block)))
            block = []
            log.debug("step %d/%d pinball %.4f", len(losses) * LOSS_EVERY, cfg.steps, losses[-1])
    if block:
        losses.append(float(np.mean(block)))
    net.eval()
    return TrainResult(net=net, losses=losses, seconds=time.perf_counter() - t0)


def predict(net: Any, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Run a trained :class:`ForecastNet` or its exported module on packed inputs.

    Returns:
        ``(rows, H, 3)`` float64 units.
    """
    if isinstance(net, ForecastNet):
        net.eval()  # exported modules are already in inference mode
    params = list(net.parameters())
    device = params[0].device if params else torch.device("cpu")
    outs = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            chunk = torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size])).to(device)
            # torch.export specialises batch size 1, so a lone row is padded to two and the pad dropped.
            out = net(chunk.repeat(2, 1))[:1] if len(chunk) == 1 else net(chunk)
            outs.append(out.cpu())
    return torch.cat(outs).numpy().astype(np.float64)
