"""Pricing family: demand fit, simulator, DP oracle (against brute force and the Gallego & van Ryzin closed form),
off-policy estimators, Gymnasium env, baselines as registrable candidates, and a trained agent.

Unit tests use tiny hand-made catalogues. The behavioural tests train once (module fixture) on a generated
300-customer shop with Feast features, and once more with the same params on the same batch without its truth
folder: the trained policy and the selected candidate must be identical, only the scoring (oracle) differs.
"""

from __future__ import annotations

import copy
import functools

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from pipelines.models.pricing import ope, oracle
from pipelines.models.pricing.baselines import MYOPIC, RULES, STATIC, RulePricing, plugin_policy, static_policy
from pipelines.models.pricing.demand import DemandCurves, day_numbers, fit_curves
from pipelines.models.pricing.simulator import (Guardrails, PricingSim, expected_sales, make_catalog, poisson_ppf,
                                               rollout)

CUSTOMERS = 300
# Fewer DQN steps than the default keep this file fast; the behaviour tested does not depend on them. No time limit:
# the safety stop would make two trainings on a busy machine stop at different steps (not reproducible).
TRAIN = {"train_steps": "600", "val_every": "200", "eval_seeds": "3", "max_train_seconds": "3600"}


def tiny_products(cost=(5.0, 80.0)) -> pd.DataFrame:
    return pd.DataFrame({"product_id": ["a", "b"], "base_price": [10.0, 100.0], "cost": list(cost)})


def flat_curves(products: pd.DataFrame, scale, elasticity) -> DemandCurves:
    """Curves with no season (factor 1 every day)."""
    return DemandCurves(product_ids=products["product_id"].to_numpy(object),
                        base_price=products["base_price"].to_numpy(float), scale=np.asarray(scale, float),
                        elasticity=np.asarray(elasticity, float), dow_log=np.zeros(7), yearly=np.zeros(2))


CALENDAR = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")


# ------------------------------------------------------------------------------------------------ demand
def test_fit_curves_recovers_elasticity_scale_and_weekday_effect():
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-01-01", periods=400, freq="D", tz="UTC")
    products = pd.DataFrame({"product_id": ["p1", "p2", "p3"], "base_price": [10.0, 50.0, 5.0], "cost": 1.0})
    elasticity, scale = np.array([-0.9, -1.8, -2.6]), np.array([30.0, 12.0, 50.0])
    weekly = np.array([0.9, 0.9, 0.9, 1.0, 1.1, 1.3, 1.0])
    rows = []
    for j in range(3):
        ratio = np.exp(rng.normal(0, 0.12, len(days)))
        mean = scale[j] * ratio ** elasticity[j] * weekly[days.dayofweek]
        rows.append(pd.DataFrame({"product_id": f"p{j + 1}", "date": days,
                                  "price": products["base_price"][j] * ratio, "units": rng.poisson(mean)}))
    fitted = fit_curves(pd.concat(rows), products, elasticity_prior=0.0)
    np.testing.assert_allclose(fitted.elasticity, elasticity, atol=0.12)
    season = fitted.season(days)
    np.testing.assert_allclose(fitted.scale * season.mean(), scale * weekly.mean(), rtol=0.05)
    by_dow = pd.Series(season).groupby(days.dayofweek).mean().to_numpy()
    np.testing.assert_allclose(by_dow / by_dow.mean(), weekly / weekly.mean(), atol=0.04)


def test_fit_curves_keeps_a_product_without_sales_finite():
    days = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    products = pd.DataFrame({"product_id": ["p1", "p2"], "base_price": [10.0, 10.0], "cost": 1.0})
    sales = pd.DataFrame({"product_id": "p1", "date": days, "price": 10.0 * (1 + 0.1 * (days.day % 2)),
                          "units": 5})
    fitted = fit_curves(pd.concat([sales, sales.assign(product_id="p2", units=0)]), products)
    assert np.all(np.isfinite(fitted.scale)) and fitted.scale[1] < 0.05
    assert -6 <= fitted.elasticity.min() and fitted.elasticity.max() <= -0.1


# ------------------------------------------------------------------------------------------------ guardrails
def test_catalog_prices_lie_within_floor_and_ceiling():
    products = pd.DataFrame({"product_id": ["a", "b", "c"], "base_price": [10.0, 100.0, 10.0],
                             "cost": [5.0, 80.0, 12.0]})
    cat = make_catalog(products, [5, 5, 5], Guardrails(min_margin=0.1, max_price_ratio=1.2, max_daily_change=0.1))
    np.testing.assert_allclose(cat.floor, [5 / 0.9, 80 / 0.9, 12 / 0.9])
    # c costs more than its ceiling allows: the margin floor wins.
    np.testing.assert_allclose(cat.ceiling, [12.0, 120.0, 12 / 0.9])
    assert np.all(cat.prices >= cat.floor[:, None] - 1e-12) and np.all(cat.prices <= cat.ceiling[:, None] + 1e-12)
    np.testing.assert_allclose(cat.prices[0], np.clip(10 * np.linspace(0.7, 1.3, 11), 5 / 0.9, 12.0))


def test_allowed_levels_and_guard_respect_the_daily_change_limit():
    cat = make_catalog(tiny_products(), [5, 5], Guardrails(max_daily_change=0.1))
    rows = np.array([0, 0, 0])
    allowed = cat.allowed(rows, np.array([10.0, 7.0, 30.0]))
    prices = cat.prices[0]
    assert set(np.round(prices[allowed[0]], 6)) == {9.4, 10.0, 10.6}
    assert set(np.round(prices[allowed[1]], 6)) == {7.0, 7.6}
    # 30 is far above the ceiling: the only allowed level is the closest (the ceiling).
    assert allowed[2].sum() == 1 and prices[allowed[2]][0] == cat.ceiling[0]
    guarded = cat.guard(np.array([0, 0, 0]), np.array([12.5, 3.0, 12.5]), np.array([10.0, 10.0, 30.0]))
    np.testing.assert_allclose(guarded, [11.0, 9.0, 12.5])


def test_sim_step_caps_sales_at_stock_charges_holding_and_restocks():
    products = tiny_products()
    cat = make_catalog(products, [4, 3], Guardrails(), restock_every=7, holding_rate=0.01)
    curves = flat_curves(products, [50.0, 0.001], [-2.0, -2.0])
    restock_day = int(np.flatnonzero(cat.is_restock_day(CALENDAR))[0])
    sim = PricingSim(cat, curves, CALENDAR, np.array([0, 1]))
    sim.reset(np.array([restock_day + 1, restock_day + 1]), inventory=np.array([2, 3]))
    result, state = sim.step(np.array([cat.reference_level, cat.reference_level]), uniforms=np.array([0.5, 0.5]))
    assert result.units.tolist() == [2, 0] and result.stockout.tolist() == [True, False]
    np.testing.assert_allclose(result.reward, [(10 - 5) * 2, -0.01 * 80 * 3])
    assert state.inventory.tolist() == [0, 3]
    for _ in range(5):  # reach the next restock day
        _, state = sim.step(state.level)
    assert state.inventory.tolist() == [4, 3] and bool(cat.is_restock_day(state.day)[0])


def test_poisson_helpers_match_scipy_and_monte_carlo():
    rng = np.random.default_rng(1)
    mean, u = rng.lognormal(1, 1.5, 5000), rng.random(5000)
    np.testing.assert_array_equal(poisson_ppf(u, mean), poisson.ppf(u, mean).astype(int))
    mean, stock = np.array([0.5, 3.0, 20.0, 100.0]), np.array([0, 1, 20, 90])
    draws = np.minimum(rng.poisson(mean, (200_000, 4)), stock).mean(axis=0)
    np.testing.assert_allclose(expected_sales(mean, stock), draws, atol=0.05)


# ------------------------------------------------------------------------------------------------ oracle
def _brute_force_value(cat, curves, days) -> np.ndarray:
    """Optimal expected profit by plain recursion over (day, stock, last level) with explicit demand sums."""
    season, restock = curves.season(days), cat.is_restock_day(days)
    out = []
    for p in range(cat.n_products):
        full, prices, cost = int(cat.order_up_to[p]), cat.prices[p], cat.cost[p]
        allowed = cat.allowed(np.full(cat.n_levels, p), prices)

        @functools.lru_cache(maxsize=None)
        def value(t, stock, last):
            if t == len(days):
                return 0.0
            best = -np.inf
            for k in np.flatnonzero(allowed[last]):
                mean = curves.mean(np.array([p]), prices[k], season[t])[0]
                total = 0.0
                for d in range(stock + 1):
                    prob = poisson.pmf(d, mean) if d < stock else poisson.sf(stock - 1, mean)
                    nxt = full if t + 1 < len(days) and restock[t + 1] else stock - d
                    reward = (prices[k] - cost) * d - cat.holding_rate * cost * (stock - d)
                    total += prob * (reward + value(t + 1, nxt, int(k)))
                best = max(best, total)
            return best

        out.append(value(0, full, cat.reference_level))
    return np.array(out)


def test_oracle_dp_equals_brute_force_recursion():
    products = tiny_products()
    cat = make_catalog(products, [6, 3], Guardrails(max_daily_change=0.15), n_levels=5, restock_every=3,
                       holding_rate=0.02)
    curves = DemandCurves(product_ids=products["product_id"].to_numpy(object), base_price=cat.base_price,
                          scale=np.array([2.0, 0.8]), elasticity=np.array([-2.2, -1.4]),
                          dow_log=np.log([1, 1, 1, 1, 1.2, 1.4, 1]), yearly=np.zeros(2))
    days = CALENDAR[3:10]
    plan = oracle.solve(cat, curves, days)
    np.testing.assert_allclose(plan.expected_profit, _brute_force_value(cat, curves, days), rtol=1e-9)


def test_oracle_value_matches_simulation_and_beats_baselines():
    products = tiny_products()
    cat = make_catalog(products, [30, 6], Guardrails(), restock_every=7)
    curves = flat_curves(products, [6.0, 1.0], [-2.5, -1.2])
    plan = oracle.solve(cat, curves, CALENDAR[:28])
    seeds = list(range(60))
    sims = rollout(cat, curves, CALENDAR, plan.policy(), 0, 28, seeds).profit_per_seed()
    assert abs(sims.mean() - plan.expected_profit.sum()) < 3 * sims.std() / np.sqrt(len(seeds))
    for baseline in (static_policy(cat), plugin_policy(cat, curves)):
        other = rollout(cat, curves, CALENDAR, baseline, 0, 28, seeds).profit_per_seed()
        assert (sims - other).mean() > 0


def test_oracle_price_falls_as_demand_gets_more_elastic():
    products = pd.DataFrame({"product_id": [f"p{i}" for i in range(5)], "base_price": 10.0, "cost": 4.0})
    elasticity = np.array([-1.2, -1.6, -2.0, -2.5, -3.0])
    cat = make_catalog(products, [500] * 5, Guardrails(min_margin=0.0, max_price_ratio=1.3))
    curves = flat_curves(products, [5.0] * 5, elasticity)
    runs = rollout(cat, curves, CALENDAR, oracle.solve(cat, curves, CALENDAR[:35]).policy(), 0, 35, [0])
    settled = runs.price[0, -14:].mean(axis=0)  # after the daily-change limit let it reach its target
    assert np.all(np.diff(settled) <= 1e-9) and settled[0] > settled[-1]
    # With ample stock the optimum is the textbook cost * e / (1 + e), on the grid and within the guardrails.
    target = np.clip(4.0 * elasticity / (1 + elasticity), cat.prices.min(), cat.prices.max())
    np.testing.assert_allclose(settled, target, atol=0.61)  # one grid step (0.6)


def _gallego_van_ryzin(cost: float, scale: float, elasticity: float, base: float, stock: int, days: int):
    """Deterministic (fluid) optimum of Gallego & van Ryzin (1994), "Optimal dynamic pricing of inventories with
    stochastic demand over finite horizons", Management Science 40(8), section 3, for constant-elasticity demand
    ``lambda(p) = scale * (p / base) ** elasticity`` and a unit cost: the price ``p* = max(p_u, p_0)``, where
    ``p_u = cost * e / (1 + e)`` maximises the profit rate ``(p - cost) lambda(p)`` (the monopoly price) and the
    run-out price ``p_0`` solves ``lambda(p_0) * days = stock``; ``J_D = days (p* - cost) lambda(p*)``.
    """
    p_u = cost * elasticity / (1 + elasticity)
    p_0 = base * (stock / (scale * days)) ** (1 / elasticity)
    price = max(p_u, p_0)
    rate = scale * (price / base) ** elasticity
    return price, days * (price - cost) * rate, rate * days


@pytest.mark.parametrize("cost, cover", [(5.0, 3.0), (4.0, 1.0)], ids=["stock-ample", "stock-binding"])
def test_oracle_dp_converges_to_the_gallego_van_ryzin_optimum(cost, cover):
    """The DP on one restock cycle (Poisson demand, no holding cost, no change limit) against the closed form.

    Their Theorems 1 and 3: the expected optimal profit ``J*`` lies in ``[(1 - 1 / (2 sqrt(min(n, lambda* T)))) J_D,
    J_D]`` (the fixed price ``p*`` alone earns the lower bound), so ``J* / J_D -> 1`` as demand and stock scale up,
    and the optimal price converges to ``p*``. ``p*`` is 10 in both cases: the monopoly price ``5 * 2 / 1`` with
    ample stock, the run-out price above the monopoly price 8 when the stock only covers demand at 10.
    """
    days = 7
    calendar = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    start = int(np.flatnonzero(day_numbers(calendar) % days == 0)[0])  # a restock day: the cycle starts full
    horizon = calendar[start : start + days]
    products = pd.DataFrame({"product_id": ["x"], "base_price": [10.0], "cost": [cost]})
    e, gaps, prices = -2.0, [], []
    for scale in (2.0, 20.0, 200.0):
        # Binding: the stock covers the cycle's demand at 10. Ample: three times the demand at the monopoly price.
        covered = scale * days if cover == 1.0 else scale * (cost * e / (1 + e) / 10.0) ** e * days
        stock = int(round(cover * covered))
        p_star, j_d, sold = _gallego_van_ryzin(cost, scale, e, 10.0, stock, days)
        # A 1 % price grid (0.80 ... 1.20 x base) that holds p* = 10; every level reachable from every level.
        cat = make_catalog(products, [stock], Guardrails(min_margin=0.0, max_price_ratio=2.0, max_daily_change=1.0),
                           n_levels=41, min_multiplier=0.8, max_multiplier=1.2, restock_every=days, holding_rate=0.0)
        plan = oracle.solve(cat, flat_curves(products, [scale], [e]), horizon)
        j_star = float(plan.expected_profit[0])
        assert (1 - 1 / (2 * np.sqrt(min(stock, sold)))) * j_d - 1e-9 <= j_star <= j_d * (1 + 1e-9)
        gaps.append(1 - j_star / j_d)
        prices.append(float(cat.prices[0, plan.actions[0, 0, stock, cat.reference_level]]))
    assert prices[-1] == pytest.approx(10.0)  # the largest scale prices exactly p* on day one
    assert abs(prices[0] - 10.0) >= abs(prices[1] - 10.0) >= abs(prices[2] - 10.0)
    if cover == 1.0:  # the stochastic gap closes like 1 / sqrt(scale) (here about 6 %, 1.2 %, 0.3 %)
        assert gaps[0] > gaps[1] > gaps[2] > 0 and gaps[2] < 0.005
    else:  # ample stock never binds: the monopoly price every day earns J_D exactly
        np.testing.assert_allclose(gaps, 0.0, atol=1e-8)


# ------------------------------------------------------------------------------------------------ baselines
def test_rule_candidates_act_like_the_baseline_policies_and_their_scores_agree():
    products = pd.DataFrame({"product_id": ["a", "b", "c"], "base_price": [10.0, 100.0, 10.0],
                             "cost": [5.0, 40.0, 9.5]})
    cat = make_catalog(products, [30, 8, 5], Guardrails(), restock_every=7)
    curves = flat_curves(products, [6.0, 1.0, 3.0], [-2.5, -1.6, -0.8])
    for rule, policy in ((STATIC, static_policy(cat)), (MYOPIC, plugin_policy(cat, curves))):
        candidate = RulePricing(rule, cat, curves)
        a = rollout(cat, curves, CALENDAR, candidate.as_policy(), 0, 28, [1, 2])
        b = rollout(cat, curves, CALENDAR, policy, 0, 28, [1, 2])
        np.testing.assert_array_equal(a.price, b.price)
        # The scores (the MLflow signature's output) pick the same level as the rule, masked by the guardrails.
        rng = np.random.default_rng(0)
        rows = rng.integers(0, 3, 500)
        last = cat.base_price[rows] * rng.uniform(0.6, 1.4, 500)
        feats = candidate.features(rows, np.full(500, 19_800), cat.order_up_to[rows], last)
        q = candidate.q_values(feats)
        picked = np.argmax(np.where(cat.allowed(rows, last), q, -np.inf), axis=1)
        np.testing.assert_array_equal(cat.prices[rows, picked], cat.prices[rows, candidate.act(rows, 0, 0, last)])
    with pytest.raises(ValueError, match="unknown pricing baseline"):
        RulePricing("nope", cat, curves)


def test_profit_ratio_is_the_ratio_of_sums_and_nan_without_a_positive_optimum():
    from pipelines.models.pricing.scoring import profit_ratio

    frame = pd.DataFrame({"profit": [3.0, 5.0], "oracle_profit": [4.0, 6.0]}, index=["a@0", "b@0"])
    assert profit_ratio(frame) == pytest.approx(0.8)
    assert profit_ratio(frame.iloc[[1, 1]]) == pytest.approx(5 / 6)
    assert np.isnan(profit_ratio(frame.assign(oracle_profit=0.0)))


# ------------------------------------------------------------------------------------------------ OPE
def test_off_policy_estimators_on_a_known_bandit():
    rng = np.random.default_rng(3)
    n, k = 200_000, 4
    mu = np.array([0.1, 0.2, 0.3, 0.4])
    logged = rng.choice(k, n, p=mu)
    true_reward = np.array([1.0, 2.0, 3.0, 5.0])
    reward = true_reward[logged] + rng.normal(0, 1, n)
    target = np.full(n, 3)
    prop, counts = ope.propensities(np.zeros(n, int), logged, 1, k, smoothing=0.0)
    np.testing.assert_allclose(prop[0], mu, atol=0.01)
    good = ope.estimate(reward, logged, target, prop[0, logged], true_reward[logged], true_reward[target])
    assert abs(good["ips"] - 5.0) < 0.05 and abs(good["dr"] - 5.0) < 0.02 and good["dm"] == 5.0
    # A wrong reward model: DR is still right (propensities are), DM is not.
    bad_hat = np.zeros(k)
    bad = ope.estimate(reward, logged, target, prop[0, logged], bad_hat[logged], bad_hat[target])
    assert abs(bad["dr"] - 5.0) < 0.05 and bad["dm"] == 0.0
    assert abs(bad["match_rate"] - 0.4) < 0.01


# ------------------------------------------------------------------------------------------------ Gymnasium
def test_gym_env_passes_the_checker_and_keeps_guardrails():
    from gymnasium.utils.env_checker import check_env

    from pipelines.models.pricing.gym_env import PricingEnv

    products = tiny_products()
    cat = make_catalog(products, [20, 5], Guardrails())
    curves = flat_curves(products, [3.0, 1.0], [-2.0, -1.5])
    env = PricingEnv(cat, curves, CALENDAR, product=1, episode_days=10)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    last, done, steps = cat.prices[1, cat.reference_level], False, 0
    while not done:
        mask = env.action_masks()
        obs, reward, terminated, truncated, info = env.step(int(env.action_space.sample()))
        assert mask[info["level"]] and cat.floor[1] <= info["price"] <= cat.ceiling[1]
        assert abs(info["price"] / last - 1) <= cat.max_daily_change + 1e-9
        last, done, steps = info["price"], terminated or truncated, steps + 1
    assert steps == 10


# ------------------------------------------------------------------------------------------------ trained agent
@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A generated 300-customer batch with its features built and registered in Feast."""
    from pipelines.data.generator import generate
    from pipelines.features import build, store
    from pipelines.settings import Settings

    root = tmp_path_factory.mktemp("pricing")
    batch = generate(root / "landing", root / "truth", customers=CUSTOMERS, seed=7)
    settings = Settings(home=root / "home")
    build.build_feature_tables(batch.batch_dir, settings)
    store.apply(settings)
    return settings, batch


def _train(shop, with_truth: bool):
    from pipelines.models.pricing.data import prepare
    from pipelines.models.pricing.evaluation import evaluate
    from pipelines.models.pricing.model import fit
    from pipelines.models.pricing.params import PricingParams
    from pipelines.spec import DataContext

    settings, batch = shop
    ctx = DataContext(settings=settings, batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir if with_truth else None)
    params = PricingParams.model_validate(TRAIN)
    data = prepare(ctx, params)
    model = fit(data, params)
    return data, model, evaluate(model, data, params), params


@pytest.fixture(scope="module")
def trained(shop):
    return _train(shop, with_truth=True)


@pytest.fixture(scope="module")
def trained_without_truth(shop):
    return _train(shop, with_truth=False)


def test_model_beats_its_best_baseline_and_stays_below_the_oracle(trained):
    from pipelines import promotion
    from pipelines.models.pricing.scoring import holdout, profit_ratio

    data, model, ev, _ = trained
    m = ev.metrics
    assert ev.oracle == 1.0 and data.truth
    best = max(ev.baselines, key=ev.baselines.get)
    assert best == MYOPIC and ev.baselines[MYOPIC] > ev.baselines[STATIC] + 0.05
    assert ev.candidate == "model" and m["profit_ratio_to_oracle"] > ev.baselines[best] + 0.02
    # ... and the gate's paired bootstrap over product-episodes says the gain holds up.
    decision = promotion.decide(metric_name="profit_ratio_to_oracle", metric=profit_ratio, higher_is_better=True,
                                challenger_version="1", challenger=holdout(model, data), candidate=ev.candidate,
                                baselines=ev.units, champion_version=None, champion=None)
    assert decision.promoted and decision.best_baseline == MYOPIC, decision.reason
    # The oracle is optimal in expectation; on a few seeds the agent may only tie it by luck.
    assert m["profit_ratio_to_oracle"] < 1.0 + 3 * m["profit_ratio_std"] + 1e-3
    assert m["guardrail_violations"] == 0
    assert abs(m["oracle_expected_profit"] / m["oracle_profit"] - 1) < 0.02
    assert {"season_policy.png", "training_reward.png", "price_vs_elasticity.png", "off_policy.png"} <= set(ev.figures)
    # The doubly robust estimate lands near the simulated value of the same decisions; plain IPS cannot see
    # the prices the logging policy never tried.
    assert abs(m["ope_dr_rel_error"]) < 0.15 and m["ope_support"] < 1.0


def test_holdout_units_metric_and_selection_follow_the_gate_contract(trained):
    from pipelines import promotion
    from pipelines.models.pricing import SPEC

    data, model, ev, _ = trained
    frame = SPEC.holdout(model, data)
    n = data.catalog.n_products * len(data.eval_seeds)
    assert len(frame) == n and frame.index.is_unique
    assert {"product_id", "episode", "profit", "oracle_profit"} <= set(frame.columns)
    assert SPEC.metric(frame) == pytest.approx(ev.metrics[SPEC.primary_metric], rel=1e-12)
    assert set(ev.units) == set(ev.baselines) == set(RULES)
    for name, units in ev.units.items():
        assert units.index.equals(frame.index)
        np.testing.assert_array_equal(units["oracle_profit"], frame["oracle_profit"])  # same episodes, same optimum
        assert SPEC.metric(units) == pytest.approx(ev.baselines[name], rel=1e-12)
    assert np.isfinite(SPEC.metric(frame.sample(frac=1.0, replace=True, random_state=0)))
    # Selection: every candidate scored on validation (fitted simulator), the winner is the one registered.
    assert set(ev.selection) == {*RULES, "model"}
    assert ev.candidate == promotion.select_candidate(ev.selection, higher_is_better=True)
    assert all(ev.selection[ev.candidate] >= v for v in ev.selection.values())


def test_truth_only_scores_same_policy_with_and_without_the_truth_folder(trained, trained_without_truth):
    import torch

    from pipelines.models.pricing.scoring import holdout

    data, model, ev, _ = trained
    data_nt, model_nt, ev_nt, _ = trained_without_truth
    assert not data_nt.truth and data_nt.score_curves is data_nt.est_curves
    assert data.score_curves.source == "truth" and data.est_curves.source == "fitted"
    # Same data, same params: the same agent, the same validation scores, the same winner ...
    assert ev.candidate == ev_nt.candidate and ev.selection == ev_nt.selection
    for (k, a), b in zip(model.state_dict().items(), model_nt.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # ... acting identically on every logged holdout context and on random ones ...
    rng = np.random.default_rng(5)
    cat, logged = data.catalog, data.logged
    extra = rng.integers(0, cat.n_products, 2000)
    rows = np.concatenate([logged["row"].to_numpy(), extra])
    day = np.concatenate([logged["day"].to_numpy(), rng.integers(20_000, 21_000, len(extra))])
    last = np.concatenate([logged["last_price"].to_numpy(), cat.base_price[extra] * rng.uniform(0.7, 1.3, len(extra))])
    inventory = rng.integers(0, cat.order_up_to[rows] + 1)
    np.testing.assert_array_equal(model.act(rows, day, inventory, last), model_nt.act(rows, day, inventory, last))
    # ... and, scored in the same simulator, the same holdout. Only the scoring simulator and its oracle differ.
    pd.testing.assert_frame_equal(holdout(model_nt, data), holdout(model, data))
    assert ev.oracle == 1.0 and ev_nt.oracle is None and "elasticity_mae" not in ev_nt.metrics
    assert not np.allclose(holdout(model, data)["oracle_profit"], holdout(model_nt, data_nt)["oracle_profit"])
    # Without the truth, the optimum is that of the fitted simulator the holdout is scored in.
    assert 0.5 < ev_nt.metrics["profit_ratio_to_oracle"] <= 1.0 + 3 * ev_nt.metrics["profit_ratio_std"] + 1e-3
    assert ev_nt.metrics["guardrail_violations"] == 0
    assert "fitted" in ev_nt.extra_params["scored_in"] and "truth" in ev.extra_params["scored_in"]


def test_a_baseline_candidate_logs_loads_and_prices_like_the_agent(trained, tmp_path):
    import mlflow

    from pipelines.models.pricing.model import load_model
    from pipelines.models.pricing.scoring import holdout
    from pipelines.models.pricing.serving import PriceRequest, serve_predict

    data, _, ev, _ = trained
    baseline = RulePricing(MYOPIC, data.catalog, data.est_curves)
    mlflow.pytorch.save_model(baseline, str(tmp_path / "m"), serialization_format="pickle",
                              pip_requirements=["torch"])  # skips the slow requirement inference
    loaded = load_model(str(tmp_path / "m"))
    assert isinstance(loaded, RulePricing) and loaded.rule == MYOPIC
    # Registered, it would be judged on exactly the per-unit results training logged for it.
    pd.testing.assert_frame_equal(holdout(loaded, data), ev.units[MYOPIC])
    pid = str(data.catalog.product_ids[2])
    answer = serve_predict(loaded, PriceRequest(product_id=pid, inventory=3, last_price=float(
        data.catalog.base_price[2])))
    assert answer["floor"] - 1e-9 <= answer["price"] <= answer["ceiling"] + 1e-9


def test_price_never_leaves_the_guardrails(trained):
    _, model, _, _ = trained
    cat = model.catalog
    rng = np.random.default_rng(11)
    n = 3000
    rows = rng.integers(0, cat.n_products, n)
    last = cat.base_price[rows] * rng.uniform(0.3, 2.0, n)
    last[rng.random(n) < 0.05] = np.nan  # missing: defaults to the reference price
    frame = pd.DataFrame({
        "product_id": cat.product_ids[rows],
        "date": pd.Timestamp("2020-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 3650, n), unit="D"),
        "inventory": rng.integers(-5, 3 * cat.order_up_to[rows] + 2),
        "last_price": last,
    })
    prices = model.prices(frame)
    assert np.all(prices >= cat.floor[rows] - 1e-9) and np.all(prices <= cat.ceiling[rows] + 1e-9)
    reference = np.where(np.isnan(last), cat.prices[rows, cat.reference_level], last)
    inside = (reference >= cat.floor[rows]) & (reference <= cat.ceiling[rows])
    assert np.all(np.abs(prices[inside] / reference[inside] - 1) <= cat.max_daily_change + 1e-9)
    one = model.price(str(cat.product_ids[0]), {"inventory": 3, "last_price": 1e6})
    assert one == pytest.approx(cat.ceiling[0])
    with pytest.raises(KeyError, match="unknown product"):
        model.price("NOPE")


def test_learned_price_goes_down_when_demand_is_more_elastic(trained):
    _, model, _, _ = trained
    cat = model.catalog
    rows = np.arange(cat.n_products)
    day = np.repeat(day_numbers(pd.DatetimeIndex(["2025-03-03"], tz="UTC")), len(rows))

    def mean_price(elasticity: float) -> float:
        clone = copy.deepcopy(model)
        clone.curves.elasticity = np.full(cat.n_products, elasticity)
        clone.refresh()
        levels = clone.act(rows, day, cat.order_up_to, cat.prices[:, cat.reference_level])
        return float((cat.prices[rows, levels] / cat.base_price).mean())

    prices = [mean_price(e) for e in (-1.1, -1.8, -2.8)]
    assert prices[0] > prices[1] > prices[2]


def test_logged_model_round_trips_with_mlflow(trained, tmp_path):
    import mlflow

    from pipelines.models.pricing.model import load_model, score

    data, model, ev, _ = trained
    path = tmp_path / "model"
    mlflow.pytorch.save_model(model, str(path), serialization_format="pickle", pip_requirements=["torch"])
    loaded = load_model(str(path))
    pid = str(model.catalog.product_ids[3])
    context = {"date": "2026-01-05", "inventory": 4, "last_price": float(model.catalog.base_price[3])}
    assert loaded.price(pid, context) == model.price(pid, context)
    assert score(loaded, data) == pytest.approx(ev.metrics["profit_ratio_to_oracle"])
