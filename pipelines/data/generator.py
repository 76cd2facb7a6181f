"""Seeded generator of a realistic shop with hidden ground truth, plus oracle helpers computed from that truth.

The shop is simulated from a small latent model. Time is measured in days from the first day of the history
(``start``, midnight UTC) to the end of the last day (``end`` + 1 day, exclusive); all rates are per day.

Customers (``customers`` rows)
    * ``signup_ts`` over the history with slowly growing sign-ups, none in the last 30 days; ``region`` and
      ``segment`` (bargain / regular / premium) drawn independently.
    * purchase rate ``lambda`` ~ lognormal (median 1/32, 1/25, 1/18 orders/day by segment);
    * churn hazard ``h`` ~ lognormal (median 1/200, 1/300, 1/450 per day: bargain churns most);
      death time = signup + Exponential(mean 1/h). A customer makes no event after death.
    * spend scale ``s`` ~ Gamma(shape 5, mean 0.7 / 1.0 / 1.5): tilts product choice towards cheaper (s < 1)
      or dearer (s > 1) products within a category, with weight ``(base_price / category median) ** (2 log s)``.
    * taste over the 8 categories ~ Dirichlet (segment-dependent concentration).

Products (``products`` rows): ``max(40, customers // 25)`` products over the 8 categories (every category at
least once), a brand from the category's brands, ``base_price`` lognormal around a category median (the
reference list price), ``cost = base_price * U(0.4, 0.7)``, a true price elasticity ``U(-2.5, -0.8)``, a
popularity (lognormal, sums to 1) and a base daily demand growing with popularity. Each has six 32x32 PNG photos
(:mod:`pipelines.data.product_images`: category shape and texture, look-alike categories, varied pose, scale,
background, lighting, noise); ``image_file`` names the first, the others are ``views/<product_id>/<k>.png``.

Daily sales (``daily_sales``, every product x every day): price = base price x occasional list-price changes
x promotions (5-30 % off for 2-10 days, about every 45 days); units ~ Poisson(base_demand *
(price / base_price) ** elasticity * weekly seasonality * yearly seasonality (peak late December)). These are
store-wide sales over all channels and need not match the ``orders`` table.

Orders and events: while alive, a customer orders as a Poisson process of rate ``lambda``. Each order is one
product drawn with probability proportional to ``taste[category] * popularity share within the category *
price tilt``; quantity is 1-3 (groceries more often 2-3); ``unit_price`` is that day's ``daily_sales`` price
and ``amount = quantity * unit_price``. A purchase event sits at the order time, preceded within two hours by
1 + Poisson(2) views of the same product or related products (same category) and, within 20 minutes, 1-2
add_to_cart events of the product (the lead-up is compressed right after sign-up so it never precedes it).
Extra browsing views arrive at rate ``3 * lambda`` while alive (70 % from the customer's own choice
distribution, 30 % by global popularity); 6 % of them are followed by an abandoned add_to_cart.

Ground truth (written to ``truth_root/<batch_id>/``, never into the batch):
    * ``customers_truth.parquet``: customer_id, signup_ts, segment, purchase_rate, churn_hazard, death_ts (NaT if
      alive at the end of the history), spend_scale, mean_spend (expected order amount, averaging the daily prices
      over the history), pref_<category> (the taste vector).
    * ``products_truth.parquet``: product_id, category, elasticity, base_demand, popularity.
    * ``meta.json``: seed, customers, products, history_days, start, end, batch_id, row counts.

Oracles (:func:`churn_probability`, :func:`expected_spend`) are exact under this model given a customer's true
state at the cutoff (alive or dead, signed up or not); death and ordering are memoryless, so nothing about
the future is peeked at. They serve as the best achievable reference for the churn and CLV models.

Determinism: every random source derives from ``numpy.random.SeedSequence(seed)``, one child stream per
component, so the same arguments give byte-identical files and the same batch id.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data import io
from pipelines.data.product_images import render_views
from pipelines.paths import remove_tree

logger = logging.getLogger(__name__)

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "toys", "books", "grocery")
REGIONS = ("north", "south", "east", "west", "central")
SEGMENTS = ("bargain", "regular", "premium")

REGION_P = np.array([0.22, 0.18, 0.20, 0.20, 0.20])
SEGMENT_P = np.array([0.35, 0.45, 0.20])
CATEGORY_P = np.array([0.14, 0.18, 0.14, 0.12, 0.12, 0.10, 0.10, 0.10])
"""Share of the catalogue per category."""

RATE_MEDIAN = np.array([1 / 32, 1 / 25, 1 / 18])
"""Median orders per day by segment (overall median about 1/25)."""
RATE_SIGMA = 0.6
HAZARD_MEDIAN = np.array([1 / 200, 1 / 300, 1 / 450])
"""Median churn hazard per day by segment (overall median about 1/300)."""
HAZARD_SIGMA = 0.7
SPEND_MEAN = np.array([0.7, 1.0, 1.5])
SPEND_SHAPE = 5.0
TILT_PER_LOG_SPEND = 2.0
TASTE_ALPHA = np.array(
    [
        # electronics fashion home beauty sports toys books grocery
        [0.30, 0.40, 0.60, 0.40, 0.40, 0.60, 0.50, 0.90],  # bargain
        [0.50, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50, 0.50],  # regular
        [0.80, 0.80, 0.50, 0.70, 0.50, 0.30, 0.40, 0.30],  # premium
    ]
)
"""Dirichlet concentration of the category taste by segment (small values give focused tastes)."""

PRICE_MEDIAN = np.array([180.0, 45.0, 60.0, 22.0, 55.0, 30.0, 15.0, 6.0])
PRICE_SIGMA = 0.45
QUANTITY_P = {"grocery": (0.45, 0.35, 0.20), "default": (0.75, 0.18, 0.07)}
BRANDS = {
    "electronics": ("Voltix", "Nexora", "Quantis", "Lumen", "Ohmni"),
    "fashion": ("Aurelle", "Northwind", "Velora", "Stitch & Co", "Maison Lira"),
    "home": ("Hearthly", "Nestwell", "Oakline", "Casa Nova", "Dwell+"),
    "beauty": ("Glowen", "Purelle", "Silkbloom", "Dermaya", "Lumiere"),
    "sports": ("Stridex", "Peakform", "Aerolite", "Trailborn", "Kinetiq"),
    "toys": ("Playburst", "Tinkerly", "Bricko", "Wunderkid", "Jollyjam"),
    "books": ("Inkwell Press", "Pageturn", "Folio House", "Marginalia", "Quillbook"),
    "grocery": ("Freshly", "Harvest Lane", "Pantry Co", "Greenleaf", "Daily Bread"),
}
WEEKLY = np.array([0.92, 0.88, 0.90, 0.95, 1.08, 1.20, 1.07])
"""Demand multiplier by weekday, Monday first."""
YEARLY_AMPLITUDE = 0.2
YEARLY_PEAK_DOY = 355

NO_SIGNUP_DAYS = 30
VIEW_LEAD_MINUTES = (5.0, 120.0)
CART_LEAD_MINUTES = (0.5, 20.0)
BROWSE_PER_ORDER = 3.0
ABANDON_P = 0.06
SECONDS_PER_DAY = 86_400
EVENT_CODES = ("view", "add_to_cart", "purchase")


@dataclass(frozen=True)
class GeneratedBatch:
    """Where a generated batch and its hidden truth were written."""

    batch_id: str
    batch_dir: Path
    truth_dir: Path
    rows: dict[str, int] = field(default_factory=dict)
    """Row count per table."""


# --------------------------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------------------------


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded 1-based numbers, widened if ``n`` needs more digits."""
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _categorical_rows(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw one column per ``rows[k]`` from row-wise normalised cumulative weights ``cum`` using uniforms ``u``."""
    n_rows, n_cols = cum.shape
    # Offsetting row r by r turns all rows into one increasing array: one searchsorted for every draw.
    flat = (cum + np.arange(n_rows)[:, None]).ravel()
    idx = np.searchsorted(flat, rows + u, side="right") - rows * n_cols
    return np.clip(idx, 0, n_cols - 1)


def _simulate_products(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    cat = np.concatenate([np.arange(len(CATEGORIES)), rng.choice(len(CATEGORIES), n - len(CATEGORIES), p=CATEGORY_P)])
    cat = rng.permutation(cat)
    brand_idx = rng.integers(0, 5, n)
    brand = np.array([BRANDS[CATEGORIES[c]][b] for c, b in zip(cat, brand_idx, strict=True)], dtype=object)
    raw_price = PRICE_MEDIAN[cat] * np.exp(PRICE_SIGMA * rng.standard_normal(n))
    # Shops price at .99 endings; below 1 keep two decimals.
    base_price = np.where(raw_price >= 1.5, np.round(raw_price) - 0.01, np.round(np.maximum(raw_price, 0.49), 2))
    cost = np.round(base_price * rng.uniform(0.4, 0.7, n), 2)
    elasticity = rng.uniform(-2.5, -0.8, n)
    popularity = rng.lognormal(0.0, 1.0, n)
    popularity /= popularity.sum()
    base_demand = 5.0 * (popularity * n) ** 0.8 * np.exp(0.3 * rng.standard_normal(n))
    return {
        "category": cat,
        "brand": brand,
        "base_price": base_price,
        "cost": cost,
        "elasticity": elasticity,
        "popularity": popularity,
        "base_demand": base_demand,
    }


def _simulate_prices_and_units(
    rng: np.random.Generator, products: dict[str, np.ndarray], days: pd.DatetimeIndex
) -> tuple[np.ndarray, np.ndarray]:
    """Daily price and units, each of shape (products, days)."""
    n, n_days = len(products["base_price"]), len(days)
    # Occasional permanent list-price changes: a random walk on the log price with rare steps.
    steps = np.zeros((n, n_days))
    n_changes = rng.poisson(n_days / 240, n)
    rows = np.repeat(np.arange(n), n_changes)
    np.add.at(steps, (rows, rng.integers(1, n_days, rows.size)), np.log(rng.uniform(0.92, 1.12, rows.size)))
    list_factor = np.exp(np.cumsum(steps, axis=1))
    # Promotions: 2-10 day runs of 5-30 % off; overlapping runs keep the deeper discount.
    discount = np.zeros((n, n_days))
    n_promos = rng.poisson(n_days / 45, n)
    rows = np.repeat(np.arange(n), n_promos)
    starts = rng.integers(0, n_days, rows.size)
    lengths = rng.integers(2, 11, rows.size)
    depths = np.round(rng.uniform(0.05, 0.30, rows.size), 2)
    for r, s, length, d in zip(rows, starts, lengths, depths, strict=True):
        np.maximum(discount[r, s : s + length], d, out=discount[r, s : s + length])
    base = products["base_price"][:, None]
    price = np.maximum(np.round(base * list_factor * (1 - discount), 2), 0.01)
    mean = true_mean_demand(products["base_demand"][:, None], products["elasticity"][:, None], base, price, days)
    units = rng.poisson(mean)
    return price, units


def seasonality(days: pd.DatetimeIndex) -> np.ndarray:
    """True multiplicative demand seasonality (weekly x yearly) of each day."""
    days = pd.DatetimeIndex(days)
    weekly = WEEKLY[days.dayofweek.to_numpy()]
    yearly = 1 + YEARLY_AMPLITUDE * np.cos(2 * np.pi * (days.dayofyear.to_numpy() - YEARLY_PEAK_DOY) / 365.25)
    return weekly * yearly


def true_mean_demand(base_demand, elasticity, base_price, price, days: pd.DatetimeIndex) -> np.ndarray:
    """Expected daily units: ``base_demand * (price / base_price) ** elasticity * seasonality(day)``.

    Broadcasts like NumPy (e.g. products as column vectors against a row of days). This is the oracle of demand
    forecasting and the demand curve of the pricing environment.
    """
    return (np.asarray(base_demand) * (np.asarray(price) / np.asarray(base_price)) ** np.asarray(elasticity)
            * seasonality(days))


def _simulate_customers(rng: np.random.Generator, n: int, n_days: int, drift: float = 0.0) -> dict[str, np.ndarray]:
    seg = rng.choice(len(SEGMENTS), n, p=SEGMENT_P)
    region = rng.choice(len(REGIONS), n, p=REGION_P)
    # Sign-ups grow linearly over the history (a growing shop); none in the last NO_SIGNUP_DAYS days.
    signup_days = n_days - NO_SIGNUP_DAYS
    weights = np.linspace(0.6, 1.4, signup_days)
    signup = rng.choice(signup_days, n, p=weights / weights.sum()) + rng.random(n)
    rate = RATE_MEDIAN[seg] * np.exp(RATE_SIGMA * rng.standard_normal(n))
    hazard = HAZARD_MEDIAN[seg] * np.exp(HAZARD_SIGMA * rng.standard_normal(n))
    death = signup + rng.exponential(1.0 / hazard)
    spend_scale = rng.gamma(SPEND_SHAPE, SPEND_MEAN[seg] / SPEND_SHAPE)
    # The drift knob: a shop whose customers buy more often and spend more per order (same random draws).
    rate, spend_scale = rate * (1.0 + drift), spend_scale * (1.0 + drift)
    g = rng.gamma(TASTE_ALPHA[seg])  # Dirichlet draws with a per-row concentration, via normalised gammas
    taste = g / g.sum(axis=1, keepdims=True)
    return {
        "segment": seg,
        "region": region,
        "signup": signup,
        "rate": rate,
        "hazard": hazard,
        "death": death,
        "spend_scale": spend_scale,
        "taste": taste,
    }


def _choice_probabilities(
    customers: dict[str, np.ndarray], products: dict[str, np.ndarray], rows: slice
) -> np.ndarray:
    """Purchase-choice probabilities (customers[rows] x products): taste x popularity share x price tilt."""
    cat = products["category"]
    pop = products["popularity"]
    pop_share = pop / np.bincount(cat, weights=pop, minlength=len(CATEGORIES))[cat]
    log_price = np.log(products["base_price"])
    cat_median = np.array([np.median(log_price[cat == c]) for c in range(len(CATEGORIES))])
    z = log_price - cat_median[cat]
    tilt = TILT_PER_LOG_SPEND * np.log(customers["spend_scale"][rows])
    w = customers["taste"][rows][:, cat] * pop_share[None, :] * np.exp(np.outer(tilt, z))
    return w / w.sum(axis=1, keepdims=True)


def _chunks(n_rows: int, n_cols: int) -> list[slice]:
    """Row slices keeping a (rows x cols) float matrix around 16 MB."""
    step = max(1, 2_000_000 // max(n_cols, 1))
    return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]


def _draw_products(
    customers: dict[str, np.ndarray], products: dict[str, np.ndarray], cust: np.ndarray, u: np.ndarray
) -> np.ndarray:
    """Product index for each draw of customer ``cust[k]`` with uniform ``u[k]`` (``cust`` sorted)."""
    out = np.empty(cust.size, dtype=np.int64)
    n_products = len(products["popularity"])
    for rows in _chunks(len(customers["rate"]), n_products):
        lo, hi = np.searchsorted(cust, [rows.start, rows.stop])
        if lo == hi:
            continue
        cum = np.cumsum(_choice_probabilities(customers, products, rows), axis=1)
        cum /= cum[:, -1:]
        out[lo:hi] = _categorical_rows(cum, cust[lo:hi] - rows.start, u[lo:hi])
    return out


def _draw_related(rng: np.random.Generator, products: dict[str, np.ndarray], of: np.ndarray) -> np.ndarray:
    """For each product ``of[k]``, a product of the same category drawn by popularity."""
    cat, pop = products["category"], products["popularity"]
    members = [np.flatnonzero(cat == c) for c in range(len(CATEGORIES))]
    width = max(m.size for m in members)
    # Padding with 1.0 (the row's total) makes the padded columns unreachable for uniforms below 1.
    cum = np.ones((len(CATEGORIES), width))
    table = np.zeros((len(CATEGORIES), width), dtype=np.int64)
    for c, m in enumerate(members):
        if m.size:
            cs = np.cumsum(pop[m])
            cum[c, : m.size] = cs / cs[-1]
            table[c, : m.size] = m
    c_of = cat[of]
    return table[c_of, _categorical_rows(cum, c_of, rng.random(of.size))]


def _expected_order_value(
    customers: dict[str, np.ndarray], products: dict[str, np.ndarray], price: np.ndarray
) -> np.ndarray:
    """True mean order amount per customer: sum over products of P(choice) x E[quantity] x mean daily price."""
    q_mean = np.array([np.dot(QUANTITY_P.get(c, QUANTITY_P["default"]), (1, 2, 3)) for c in CATEGORIES])
    value = q_mean[products["category"]] * price.mean(axis=1)
    out = np.empty(len(customers["rate"]))
    for rows in _chunks(len(out), len(value)):
        out[rows] = _choice_probabilities(customers, products, rows) @ value
    return out


def _simulate_orders(
    rng: np.random.Generator,
    customers: dict[str, np.ndarray],
    products: dict[str, np.ndarray],
    price: np.ndarray,
    horizon: float,
) -> dict[str, np.ndarray]:
    alive_until = np.minimum(customers["death"], horizon)
    duration = np.maximum(alive_until - customers["signup"], 0.0)
    counts = rng.poisson(customers["rate"] * duration)
    cust = np.repeat(np.arange(counts.size), counts)
    t = customers["signup"][cust] + rng.random(cust.size) * duration[cust]
    prod = _draw_products(customers, products, cust, rng.random(cust.size))
    u = rng.random(cust.size)
    q_p = np.array([QUANTITY_P.get(c, QUANTITY_P["default"]) for c in CATEGORIES])[products["category"][prod]]
    quantity = 1 + (u > q_p[:, 0]) + (u > q_p[:, 0] + q_p[:, 1])
    unit_price = price[prod, np.floor(t).astype(np.int64)]
    return {"cust": cust, "t": t, "prod": prod, "quantity": quantity.astype(np.int64), "unit_price": unit_price}


def _simulate_events(
    rng: np.random.Generator,
    customers: dict[str, np.ndarray],
    products: dict[str, np.ndarray],
    orders: dict[str, np.ndarray],
    horizon: float,
) -> dict[str, np.ndarray]:
    minute = 1.0 / 1440
    o_cust, o_t, o_prod = orders["cust"], orders["t"], orders["prod"]
    # Squeeze the lead-up of orders placed right after sign-up so no event precedes the sign-up.
    squeeze = np.minimum(1.0, (o_t - customers["signup"][o_cust]) / (VIEW_LEAD_MINUTES[1] * minute))

    n_views = 1 + rng.poisson(2.0, o_t.size)
    v_order = np.repeat(np.arange(o_t.size), n_views)
    same = rng.random(v_order.size) < 0.5
    v_prod = np.where(same, o_prod[v_order], _draw_related(rng, products, o_prod[v_order]))
    v_t = o_t[v_order] - rng.uniform(*VIEW_LEAD_MINUTES, v_order.size) * minute * squeeze[v_order]

    n_carts = 1 + (rng.random(o_t.size) < 0.3)
    c_order = np.repeat(np.arange(o_t.size), n_carts)
    c_t = o_t[c_order] - rng.uniform(*CART_LEAD_MINUTES, c_order.size) * minute * squeeze[c_order]

    # Browsing while alive, some of it ending in an abandoned cart.
    alive_until = np.minimum(customers["death"], horizon)
    duration = np.maximum(alive_until - customers["signup"], 0.0)
    b_counts = rng.poisson(BROWSE_PER_ORDER * customers["rate"] * duration)
    b_cust = np.repeat(np.arange(b_counts.size), b_counts)
    b_t = customers["signup"][b_cust] + rng.random(b_cust.size) * duration[b_cust]
    own = _draw_products(customers, products, b_cust, rng.random(b_cust.size))
    pop_cum = np.cumsum(products["popularity"])
    anywhere = np.minimum(np.searchsorted(pop_cum / pop_cum[-1], rng.random(b_cust.size)), pop_cum.size - 1)
    b_prod = np.where(rng.random(b_cust.size) < 0.7, own, anywhere)
    abandon = rng.random(b_cust.size) < ABANDON_P
    a_t = b_t[abandon] + rng.uniform(*CART_LEAD_MINUTES, int(abandon.sum())) * minute
    # Midway to the end of life keeps the cart after its view and before death / the end of the history.
    a_t = np.minimum(a_t, (b_t[abandon] + alive_until[b_cust[abandon]]) / 2)

    return {
        "cust": np.concatenate([o_cust, o_cust[v_order], o_cust[c_order], b_cust, b_cust[abandon]]),
        "prod": np.concatenate([o_prod, v_prod, o_prod[c_order], b_prod, b_prod[abandon]]),
        "type": np.concatenate(
            [
                np.full(o_t.size, 2),
                np.zeros(v_order.size, dtype=np.int64),
                np.ones(c_order.size, dtype=np.int64),
                np.zeros(b_cust.size, dtype=np.int64),
                np.ones(int(abandon.sum()), dtype=np.int64),
            ]
        ),
        "t": np.concatenate([o_t, v_t, c_t, b_t, a_t]),
    }


def _ensure_fresh(
    rng: np.random.Generator,
    customers: dict[str, np.ndarray],
    events: dict[str, np.ndarray],
    n_days: int,
    n_products: int,
) -> dict[str, np.ndarray]:
    """Guarantee an event on the last day (only tiny shops can miss one): a view by a customer alive then."""
    last_day = n_days - 1
    if (events["t"] >= last_day).any():
        return events
    alive = np.flatnonzero(customers["death"] > last_day + 0.5)
    if alive.size == 0:
        # Nobody survives to the last day: keep the longest-lived customer alive (the truth records it).
        alive = np.array([int(np.argmax(customers["death"]))])
        customers["death"][alive] = np.inf
    cust = int(rng.choice(alive))
    t = last_day + rng.uniform(0.0, 0.5)
    logger.debug("added a last-day view for customer %d so that the batch is fresh", cust)
    return {
        "cust": np.append(events["cust"], cust),
        "prod": np.append(events["prod"], int(rng.integers(0, n_products))),
        "type": np.append(events["type"], 0),
        "t": np.append(events["t"], t),
    }


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def _timestamps(start: pd.Timestamp, days: np.ndarray) -> pd.Series:
    """Whole-second UTC timestamps ``days`` after ``start`` (truncation keeps every event inside its interval)."""
    seconds = np.floor(days * SECONDS_PER_DAY).astype(np.int64)
    return pd.Series(start + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ns, UTC]")


def generate(
    landing_dir: Path,
    truth_root: Path,
    customers: int = 2000,
    seed: int = 42,
    end: dt.date | None = None,
    history_days: int = 540,
    drift: float = 0.0,
) -> GeneratedBatch:
    """Simulate a shop and store it as a landing batch, with its ground truth kept apart.

    Args:
        landing_dir: Parent of batch folders; the batch lands in ``landing_dir/<batch_id>`` (kept if present).
        truth_root: Parent of truth folders; the truth goes to ``truth_root/<batch_id>``.
        customers: Number of customers; the catalogue has ``max(40, customers // 25)`` products.
        seed: Seed of every random draw; the same arguments give byte-identical files and the same batch id.
        end: Last day of the history (default: yesterday, UTC); the newest events lie on this day.
        history_days: Length of the history in days, ``end`` included.
        drift: Population drift for monitoring tests: every customer's purchase rate and spend per order are
            multiplied by ``1 + drift`` (0: the reference shop; the random draws stay the same).

    Returns:
        The batch id and the batch and truth folders.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if not -0.9 <= drift <= 10:
        raise ValueError(f"drift must be between -0.9 and 10, got {drift}")
    if history_days <= NO_SIGNUP_DAYS + 30:
        raise ValueError(f"history_days must exceed {NO_SIGNUP_DAYS + 30}")
    started = time.perf_counter()
    # Yesterday, so the whole last day lies in the past (feature snapshots and materialization never see the future).
    end = end or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = pd.Timestamp(end, tz="UTC") - pd.Timedelta(days=history_days - 1)
    days = pd.date_range(start, periods=history_days, freq="D")
    horizon = float(history_days)  # end of the last day, in days since start
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]

    n_products = max(40, customers // 25)
    prod = _simulate_products(streams[0], n_products)
    price, units = _simulate_prices_and_units(streams[1], prod, days)
    cust = _simulate_customers(streams[2], customers, history_days, drift)
    orders = _simulate_orders(streams[3], cust, prod, price, horizon)
    events = _simulate_events(streams[4], cust, prod, orders, horizon)
    events = _ensure_fresh(streams[5], cust, events, history_days, n_products)
    product_ids = _ids("P", n_products, 4)
    customer_ids = _ids("C", customers, 6)
    images = render_views(streams[6], [CATEGORIES[c] for c in prod["category"]], list(product_ids))

    o_order = np.lexsort((orders["cust"], orders["t"]))
    e_order = np.lexsort((events["type"], events["cust"], events["t"]))
    amount = np.round(orders["quantity"] * orders["unit_price"], 2)
    tables = {
        "customers": pd.DataFrame(
            {
                "customer_id": customer_ids,
                "signup_ts": _timestamps(start, cust["signup"]),
                "region": np.array(REGIONS, dtype=object)[cust["region"]],
                "segment": np.array(SEGMENTS, dtype=object)[cust["segment"]],
            }
        ),
        "products": pd.DataFrame(
            {
                "product_id": product_ids,
                "category": np.array(CATEGORIES, dtype=object)[prod["category"]],
                "brand": prod["brand"],
                "base_price": prod["base_price"],
                "cost": prod["cost"],
                "image_file": [f"images/{pid}.png" for pid in product_ids],
            }
        ),
        "events": pd.DataFrame(
            {
                "event_id": _ids("E", e_order.size, 8),
                "customer_id": customer_ids[events["cust"][e_order]],
                "product_id": product_ids[events["prod"][e_order]],
                "event_type": np.array(EVENT_CODES, dtype=object)[events["type"][e_order]],
                "event_ts": _timestamps(start, events["t"][e_order]),
            }
        ),
        "orders": pd.DataFrame(
            {
                "order_id": _ids("O", o_order.size, 7),
                "customer_id": customer_ids[orders["cust"][o_order]],
                "product_id": product_ids[orders["prod"][o_order]],
                "order_ts": _timestamps(start, orders["t"][o_order]),
                "quantity": orders["quantity"][o_order],
                "unit_price": orders["unit_price"][o_order],
                "amount": amount[o_order],
            }
        ),
        "daily_sales": pd.DataFrame(
            {
                "product_id": np.repeat(product_ids, history_days),
                "date": days[np.tile(np.arange(history_days), n_products)],
                "price": price.ravel(),
                "units": units.ravel(),
            }
        ),
    }
    batch_id, batch_dir = io.store_batch(tables, landing_dir, files=images)

    death = cust["death"]
    customers_truth = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "signup_ts": tables["customers"]["signup_ts"],
            "segment": tables["customers"]["segment"],
            "purchase_rate": cust["rate"],
            "churn_hazard": cust["hazard"],
            "death_ts": _timestamps(start, np.where(death < horizon, death, 0.0)).where(death < horizon),
            "spend_scale": cust["spend_scale"],
            "mean_spend": _expected_order_value(cust, prod, price),
            **{f"pref_{c}": cust["taste"][:, i] for i, c in enumerate(CATEGORIES)},
        }
    ).astype({"customer_id": "string", "segment": "string"})
    products_truth = pd.DataFrame(
        {
            "product_id": product_ids,
            "category": tables["products"]["category"],
            "elasticity": prod["elasticity"],
            "base_demand": prod["base_demand"],
            "popularity": prod["popularity"],
        }
    ).astype({"product_id": "string", "category": "string"})
    rows = {name: len(df) for name, df in tables.items()}
    meta = {
        "seed": seed,
        "customers": customers,
        "products": n_products,
        "history_days": history_days,
        "drift": drift,
        "start": start.date().isoformat(),
        "end": end.isoformat(),
        "batch_id": batch_id,
        "rows": rows,
    }
    truth_dir = _write_truth(truth_root, batch_id, customers_truth, products_truth, meta)
    logger.info(
        "generated batch %s (%s) in %.1f s",
        batch_id,
        ", ".join(f"{k}={v}" for k, v in rows.items()),
        time.perf_counter() - started,
    )
    return GeneratedBatch(batch_id=batch_id, batch_dir=batch_dir, truth_dir=truth_dir, rows=rows)


def _write_truth(
    truth_root: Path, batch_id: str, customers_truth: pd.DataFrame, products_truth: pd.DataFrame, meta: dict
) -> Path:
    """Write the truth folder atomically (it is deterministic, so an existing one is kept)."""
    tmp = io.make_tmp_dir(truth_root)
    try:
        io.write_table(customers_truth, tmp, "customers_truth")
        io.write_table(products_truth, tmp, "products_truth")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        io.publish_dir(tmp, truth_root / batch_id)
    except BaseException:
        remove_tree(tmp, truth_root)
        raise
    return truth_root / batch_id


def load_truth(truth_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read a truth folder written by :func:`generate`.

    Returns:
        ``(customers_truth, products_truth, meta)``.
    """
    customers_truth = pd.read_parquet(truth_dir / "customers_truth.parquet")
    products_truth = pd.read_parquet(truth_dir / "products_truth.parquet")
    meta = json.loads((truth_dir / "meta.json").read_text())
    return customers_truth, products_truth, meta


def _utc(ts: pd.Timestamp | str | dt.datetime | dt.date) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _window(customers_truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Length in days of each customer's part of (cutoff, cutoff + H] after sign-up, and whether dead at cutoff."""
    cutoff = _utc(cutoff)
    window_end = cutoff + pd.Timedelta(days=horizon_days)
    if "signup_ts" in customers_truth:
        signup = pd.to_datetime(customers_truth["signup_ts"], utc=True)
        begin = signup.where(signup > cutoff, cutoff)
    else:
        begin = pd.Series(cutoff, index=customers_truth.index)
    window = ((window_end - begin) / pd.Timedelta(days=1)).clip(lower=0.0).to_numpy(dtype=float)
    death = pd.to_datetime(customers_truth["death_ts"], utc=True)
    dead = (death.notna() & (death <= cutoff)).to_numpy()
    return window, dead


def churn_probability(customers_truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """True probability that a customer places no order in ``(cutoff, cutoff + horizon_days]``.

    Given the state at the cutoff: 1 if dead; if alive, with order rate ``l`` and churn hazard ``h`` competing,
    ``h / (h + l) * (1 - exp(-(h + l) H)) + exp(-(h + l) H)``. A customer signing up inside the window is
    counted from sign-up (and one signing up after it has probability 1). ``death_ts`` is only known up to
    the end of the history, so cutoffs should not lie after it.

    Args:
        customers_truth: The ``customers_truth`` table of :func:`load_truth`.
        cutoff: Start of the window (naive means UTC).
        horizon_days: Window length H in days.

    Returns:
        Probabilities in [0, 1] indexed by ``customer_id``.
    """
    window, dead = _window(customers_truth, cutoff, horizon_days)
    lam = customers_truth["purchase_rate"].to_numpy(dtype=float)
    haz = customers_truth["churn_hazard"].to_numpy(dtype=float)
    total = lam + haz
    survive = np.exp(-total * window)
    p = haz / total * (1 - survive) + survive
    p = np.where(dead, 1.0, np.clip(p, 0.0, 1.0))
    return pd.Series(p, index=pd.Index(customers_truth["customer_id"], name="customer_id"), name="churn_probability")


def expected_spend(customers_truth: pd.DataFrame, cutoff: pd.Timestamp, horizon_days: int) -> pd.Series:
    """True expected spend of each customer in ``(cutoff, cutoff + horizon_days]``.

    0 if dead at the cutoff; otherwise ``mean_spend * l * E[min(remaining life, H)] = mean_spend * l *
    (1 - exp(-h H)) / h`` (H shortened for customers signing up inside the window).

    Args:
        customers_truth: The ``customers_truth`` table of :func:`load_truth`.
        cutoff: Start of the window (naive means UTC).
        horizon_days: Window length H in days.

    Returns:
        Expected spend indexed by ``customer_id``.
    """
    window, dead = _window(customers_truth, cutoff, horizon_days)
    lam = customers_truth["purchase_rate"].to_numpy(dtype=float)
    haz = customers_truth["churn_hazard"].to_numpy(dtype=float)
    spend = customers_truth["mean_spend"].to_numpy(dtype=float) * lam * (1 - np.exp(-haz * window)) / haz
    spend = np.where(dead, 0.0, spend)
    return pd.Series(spend, index=pd.Index(customers_truth["customer_id"], name="customer_id"), name="expected_spend")


__all__ = [
    "CATEGORIES",
    "GeneratedBatch",
    "churn_probability",
    "expected_spend",
    "generate",
    "load_truth",
]
