"""Buy-till-you-die models fit by maximum likelihood with SciPy: BG/NBD (how many purchases) and Gamma-Gamma
(how much per purchase).

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way", Marketing Science 24(2)): while alive, a
customer buys as a Poisson process of rate ``lambda ~ Gamma(r, alpha)``; after each purchase they drop out for good
with probability ``p ~ Beta(a, b)``. A customer is summarised by ``frequency`` ``x`` (repeat purchases), ``recency``
``t_x`` (time from the first to the last purchase) and ``T`` (time from the first purchase to the cutoff).

Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV", JMR 42(4); Fader & Hardie 2013 note): the value of each
purchase is ``Gamma(p, nu)`` with a per-customer ``nu ~ Gamma(q, gamma)``, independent of the purchase process.
Fit on repeat buyers from their mean repeat-purchase value.

Time is in days throughout. The ``lifetimes`` package implements the same models but is unmaintained; this module is
self-contained and vectorised (a few thousand customers fit in well under a second).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

log = logging.getLogger(__name__)

DAY = pd.Timedelta(days=1)
_LOG_BOUNDS = (-9.0, 9.0)
"""Bounds of every log-parameter: keeps L-BFGS-B away from overflow when a parameter is barely identified."""


def rfm_summary(orders: pd.DataFrame, cutoff: pd.Timestamp, customer_ids=None) -> pd.DataFrame:
    """BG/NBD and Gamma-Gamma inputs per customer from order lines at or before ``cutoff``.

    Order lines of one customer on the same calendar day (UTC) form one purchase, timed at the day's first line and
    worth the sum of its amounts: a basket split into lines, or re-ordered within hours, is one buying decision.

    Args:
        orders: Order lines with ``customer_id``, ``order_ts`` (UTC) and ``amount``.
        cutoff: End of the observation period; lines with ``order_ts <= cutoff`` are used.
        customer_ids: Customers to return, in this order; default every customer with a line by ``cutoff``.
            Customers without any purchase get ``NaN`` everywhere (BG/NBD has nothing to say about them).

    Returns:
        Indexed by ``customer_id``: ``frequency`` (repeat purchases), ``recency`` and ``T`` (days from the first
        purchase to the last one and to ``cutoff``), ``monetary_value`` (mean value of the repeat purchases, 0 when
        there are none), ``first_value`` and ``total_value`` (sum of every purchase).
    """
    cutoff = pd.Timestamp(cutoff)
    seen = orders.loc[orders["order_ts"] <= cutoff, ["customer_id", "order_ts", "amount"]]
    seen = seen.assign(customer_id=seen["customer_id"].astype(str), day=seen["order_ts"].dt.floor("D"))
    purchases = (seen.groupby(["customer_id", "day"], sort=True)
                 .agg(ts=("order_ts", "min"), value=("amount", "sum")).reset_index())
    per = purchases.groupby("customer_id", sort=True)
    first_ts, last_ts = per["ts"].min(), per["ts"].max()
    n, total = per.size(), per["value"].sum()
    first_value = per["value"].first()  # purchases are sorted by day within each customer
    out = pd.DataFrame({
        "frequency": (n - 1).astype("float64"),
        "recency": (last_ts - first_ts) / DAY,
        "T": (cutoff - first_ts) / DAY,
        "first_value": first_value,
        "total_value": total,
    })
    repeat = out["frequency"] > 0
    out["monetary_value"] = np.where(repeat, (out["total_value"] - out["first_value"]) / out["frequency"].where(
        repeat, 1.0), 0.0)
    out.index.name = "customer_id"
    if customer_ids is not None:
        out = out.reindex(pd.Index(pd.Series(customer_ids).astype(str), name="customer_id"))
    return out[["frequency", "recency", "T", "monetary_value", "first_value", "total_value"]]


def _as_arrays(*columns) -> list[np.ndarray]:
    return [np.asarray(c, dtype="float64") for c in columns]


def _minimise(nll, x0: np.ndarray, what: str) -> np.ndarray:
    """L-BFGS-B on log-parameters, then a Nelder-Mead polish (the likelihood surfaces are flat along a ridge)."""
    bounds = [_LOG_BOUNDS] * len(x0)
    res = optimize.minimize(nll, x0, method="L-BFGS-B", bounds=bounds)
    polish = optimize.minimize(nll, res.x, method="Nelder-Mead", bounds=bounds,
                               options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000})
    best = polish if polish.fun <= res.fun else res
    if not np.isfinite(best.fun):
        raise RuntimeError(f"{what} fit failed: non-finite likelihood")
    if not (res.success or polish.success):
        log.warning("%s fit may not have converged: %s", what, res.message)
    return best.x


@dataclass
class BetaGeo:
    """BG/NBD model; parameters are ``nan`` until :meth:`fit`."""

    r: float = np.nan
    alpha: float = np.nan
    a: float = np.nan
    b: float = np.nan

    @property
    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    @staticmethod
    def log_likelihood_terms(params, frequency, recency, T) -> np.ndarray:
        """Per-customer log-likelihood of ``(frequency, recency, T)`` under ``params = (r, alpha, a, b)``."""
        r, alpha, a, b = params
        x, tx, T = _as_arrays(frequency, recency, T)
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b) - special.gammaln(a + b + x)
        # Still alive at T vs. dropped out right after the last purchase (only possible with a repeat purchase).
        alive = -(r + x) * np.log(alpha + T)
        dropped = np.log(a) - np.log(b + np.maximum(x, 1) - 1) - (r + x) * np.log(alpha + tx)
        dropped = np.where(x > 0, dropped, -np.inf)
        return a1 + a2 + np.logaddexp(alive, dropped)

    def fit(self, frequency, recency, T, penalizer: float = 0.0) -> BetaGeo:
        """Maximum likelihood (optionally L2-penalised on the log-parameters, which shrinks them towards 1).

        Args:
            frequency: Repeat purchases per customer.
            recency: Days from the first to the last purchase.
            T: Days from the first purchase to the end of observation (> 0).
            penalizer: Weight of the L2 penalty, per customer; 0 is plain maximum likelihood.

        Returns:
            ``self``, fitted.
        """
        x, tx, T = _as_arrays(frequency, recency, T)
        if x.size == 0:
            raise ValueError("BG/NBD needs at least one customer")
        if np.any(T <= 0) or np.any(tx > T) or np.any(x < 0):
            raise ValueError("BG/NBD inputs need T > 0, 0 <= recency <= T and frequency >= 0")

        def nll(theta: np.ndarray) -> float:
            ll = self.log_likelihood_terms(np.exp(theta), x, tx, T).mean()
            return float(-ll + penalizer * np.sum(theta**2))

        # Start from the method-of-moments-ish guess: mean rate (x + 1) / T, moderate dropout.
        rate = float(np.mean((x + 1) / np.maximum(T, 1.0)))
        x0 = np.log([1.0, 1.0 / max(rate, 1e-6), 1.0, 3.0])
        self.r, self.alpha, self.a, self.b = (float(v) for v in np.exp(_minimise(nll, x0, "BG/NBD")))
        return self

    def p_alive(self, frequency, recency, T) -> np.ndarray:
        """Probability that each customer is still alive at ``T``."""
        x, tx, T = _as_arrays(frequency, recency, T)
        with np.errstate(over="ignore"):
            log_ratio = (np.log(self.a) - np.log(self.b + np.maximum(x, 1) - 1)
                         + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + tx)))
            return np.where(x > 0, 1.0 / (1.0 + np.exp(log_ratio)), 1.0)

    def expected_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """Expected purchases in ``(T, T + t]`` given each customer's history (Fader et al. 2005, eq. 10).

        Uses the closed form with the Gauss hypergeometric function; where it is not finite (extreme parameters) the
        same expectation is integrated numerically over the posterior dropout probability (:meth:`_quadrature`).
        """
        x, tx, T = _as_arrays(frequency, recency, T)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if abs(a - 1.0) < 1e-8:
            a += 1e-6  # the closed form divides by (a - 1); the expectation is continuous there
        with np.errstate(all="ignore"):
            hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
            head = (a + b + x - 1) / (a - 1)
            body = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp
            out = head * body * self.p_alive(x, tx, T)
        bad = ~np.isfinite(out) | (out < 0)
        if bad.any():
            out = out.copy()
            out[bad] = self._quadrature(t, x[bad], tx[bad], T[bad])
        return out

    def _quadrature(self, t: float, x: np.ndarray, tx: np.ndarray, T: np.ndarray, nodes: int = 64) -> np.ndarray:
        """``P(alive) * E_p[(1 - ((alpha+T) / (alpha+T+p t))^(r+x)) / p]`` with ``p ~ Beta(a, b + x)``.

        Given alive at T, the posterior is ``lambda ~ Gamma(r + x, alpha + T)``, ``p ~ Beta(a, b + x)``, and a customer
        alive with ``(lambda, p)`` buys ``(1 - exp(-lambda p t)) / p`` times in expectation. Gauss-Jacobi nodes
        absorb the Beta density's end-point singularities, one rule per distinct ``x``.
        """
        out = np.empty_like(x)
        for xv in np.unique(x):
            rows = x == xv
            # Jacobi weight (1 - u)^A (1 + u)^B on [-1, 1] with p = (1 + u) / 2: A = b + x - 1, B = a - 1.
            u, w = special.roots_jacobi(nodes, self.b + xv - 1, self.a - 1)
            p = (1 + u) / 2
            w = w / w.sum()
            base = (self.alpha + T[rows])[:, None]
            inner = (1 - (base / (base + p[None, :] * t)) ** (self.r + xv)) / p[None, :]
            out[rows] = inner @ w
        return out * self.p_alive(x, tx, T)

    def expected_purchases_new(self, t) -> np.ndarray:
        """Expected purchases of a newly acquired customer in ``(0, t]`` (eq. 7; for checks and docs)."""
        t = np.asarray(t, dtype="float64")
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        hyp = special.hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp)


@dataclass
class GammaGamma:
    """Gamma-Gamma spend model; parameters are ``nan`` until :meth:`fit`."""

    p: float = np.nan
    q: float = np.nan
    v: float = np.nan

    @property
    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "v": self.v}

    @staticmethod
    def log_likelihood_terms(params, frequency, monetary_value) -> np.ndarray:
        """Per-customer log-likelihood of the mean purchase value ``monetary_value`` over ``frequency`` purchases."""
        p, q, v = params
        x, m = _as_arrays(frequency, monetary_value)
        px = p * x
        return (special.gammaln(px + q) - special.gammaln(px) - special.gammaln(q) + q * np.log(v)
                + (px - 1) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v))

    def fit(self, frequency, monetary_value, penalizer: float = 0.0) -> GammaGamma:
        """Maximum likelihood on customers with ``frequency > 0`` and ``monetary_value > 0`` (others are ignored).

        ``q`` is kept above 1 (parameterised as ``1 + exp(theta)``) so the expected value stays finite.
        """
        x, m = _as_arrays(frequency, monetary_value)
        keep = (x > 0) & (m > 0)
        x, m = x[keep], m[keep]
        if x.size < 2:
            raise ValueError("Gamma-Gamma needs at least two repeat buyers with a positive spend")

        def unpack(theta: np.ndarray) -> tuple[float, float, float]:
            return float(np.exp(theta[0])), 1.0 + float(np.exp(theta[1])), float(np.exp(theta[2]))

        def nll(theta: np.ndarray) -> float:
            ll = self.log_likelihood_terms(unpack(theta), x, m).mean()
            return float(-ll + penalizer * np.sum(theta**2))

        # Start with shape 2 and the mean spend matched: E[z] = p v / (q - 1).
        x0 = np.array([np.log(2.0), np.log(2.0), np.log(2.0 * float(np.mean(m)) / 2.0)])
        self.p, self.q, self.v = unpack(_minimise(nll, x0, "Gamma-Gamma"))
        return self

    @property
    def population_mean(self) -> float:
        """Expected purchase value of a customer with no repeat purchase yet."""
        return self.p * self.v / (self.q - 1)

    def expected_value(self, frequency, monetary_value) -> np.ndarray:
        """Posterior mean purchase value of each customer (the population mean for ``frequency == 0``)."""
        x, m = _as_arrays(frequency, monetary_value)
        m = np.where(x > 0, m, 0.0)
        return self.p * (self.v + x * m) / (self.p * x + self.q - 1)


def simulate_bgnbd(rng: np.random.Generator, T, r: float, alpha: float, a: float, b: float,
                   horizon: float = 0.0) -> pd.DataFrame:
    """Draw customers from a known BG/NBD, each observed for ``T`` days after the first purchase (for tests).

    Args:
        rng: Random generator.
        T: Observation length of each customer, in days.
        r, alpha, a, b: BG/NBD parameters.
        horizon: Also count purchases in ``(T, T + horizon]``.

    Returns:
        One row per element of ``T`` with ``frequency``, ``recency``, ``T``, ``future`` (purchases after ``T``) and
        the hidden ``alive`` flag (alive at ``T``).
    """
    T = np.asarray(T, dtype="float64")
    n = T.size
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    x, tx, future, now = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    died_at = np.full(n, np.inf)
    active = np.ones(n, dtype=bool)  # alive and still inside the simulated window
    while active.any():
        idx = np.flatnonzero(active)
        now[idx] += rng.exponential(1.0, idx.size) / np.maximum(lam[idx], 1e-300)
        inside = now[idx] <= T[idx] + horizon
        buy = idx[inside]
        calib = buy[now[buy] <= T[buy]]
        x[calib] += 1
        tx[calib] = now[calib]
        future[buy[now[buy] > T[buy]]] += 1
        died = buy[rng.random(buy.size) < p[buy]]
        died_at[died] = now[died]
        active[idx[~inside]] = False
        active[died] = False
    return pd.DataFrame({"frequency": x, "recency": tx, "T": T, "future": future, "alive": died_at > T})
