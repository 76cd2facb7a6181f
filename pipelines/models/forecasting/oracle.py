"""The forecasting oracle: Poisson noise around the generator's true mean demand (generated daily data only)."""

from __future__ import annotations

import logging

import numpy as np

from pipelines.models.forecasting.metrics import QUANTILES
from pipelines.models.forecasting.panel import Panel
from pipelines.spec import DataContext

log = logging.getLogger(__name__)


def panel_truth(ctx: DataContext, panel: Panel) -> tuple[np.ndarray, np.ndarray] | None:
    """Generator's true mean demand of every (product, day) at the realised prices, and each product's true
    elasticity; ``None`` without truth (imported data)."""
    if ctx.truth_dir is None or panel.frequency.name != "daily":
        return None
    from pipelines.data.generator import load_truth, true_mean_demand

    _, products_truth, _ = load_truth(ctx.truth_dir)
    truth = products_truth.set_index(products_truth["product_id"].astype(str)).reindex(panel.product_ids)
    base_price = (ctx.table("products").assign(product_id=lambda d: d["product_id"].astype(str))
                  .set_index("product_id")["base_price"].reindex(panel.product_ids))
    if truth["elasticity"].isna().any() or base_price.isna().any():
        log.warning("truth does not cover every product of the sales table: no oracle")
        return None
    elasticity = truth["elasticity"].to_numpy(dtype=np.float64)
    mean = true_mean_demand(truth["base_demand"].to_numpy(dtype=np.float64)[:, None], elasticity[:, None],
                            base_price.to_numpy(dtype=np.float64)[:, None], panel.price, panel.dates)
    return mean, elasticity


def poisson_quantiles(mean: np.ndarray, levels=QUANTILES) -> np.ndarray:
    """Quantiles of Poisson(mean) at each level, stacked on a new last axis (the oracle's predictive law).

    The smallest ``k`` with ``P(Y <= k) >= q``, from the continuous inverse ``pdtrik`` (``scipy.stats`` costs
    seconds to import and gives the same numbers).
    """
    from scipy.special import pdtr, pdtrik

    mean = np.maximum(np.asarray(mean, dtype=np.float64), 1e-12)
    out = []
    for q in levels:
        k = np.maximum(np.ceil(pdtrik(q, mean)), 0.0)
        # pdtrik is continuous: step back when the integer below already reaches q.
        k = np.where((k > 0) & (pdtr(k - 1, mean) >= q), k - 1, k)
        out.append(k)
    return np.stack(out, axis=-1)
