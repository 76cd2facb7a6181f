"""LTV family: BG/NBD + Gamma-Gamma maths, data set construction, a trained model's behaviour, and bring-your-own data.

One generated shop (300 customers) is trained once per module; the bring-your-own test trains on a hand-written
transaction log with minimal other tables and no truth.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from pipelines.clv import btyd
from pipelines.clv.byo import tables_from_transactions, write_batch
from pipelines.clv.model import AGE_CONFOUNDED, SUMMARY_COLUMNS, LTVRegressor
from pipelines.models import ltv
from pipelines.settings import Settings
from pipelines.spec import DataContext


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def orders_frame(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [r[0] for r in rows],
        "order_ts": pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601"),
        "amount": [r[2] for r in rows],
    })


# ------------------------------------------------------------------------------------------------ unit: tiny frames


def test_rfm_summary_merges_same_day_lines_and_ignores_the_future():
    orders = orders_frame([
        ("a", "2024-01-01 10:00", 10.0), ("a", "2024-01-01 18:00", 5.0),  # one purchase worth 15
        ("a", "2024-01-11 12:00", 30.0), ("a", "2024-01-21 00:00", 50.0),
        ("a", "2024-02-01 00:00", 99.0),  # after the cutoff
        ("b", "2024-01-25 06:00", 20.0),
    ])
    s = btyd.rfm_summary(orders, ts("2024-01-31"), ["a", "b", "nobody"])
    a, b = s.loc["a"], s.loc["b"]
    assert a["frequency"] == 2
    assert a["recency"] == pytest.approx(19.0 + 14 / 24)  # 01-01 10:00 -> 01-21 00:00
    assert a["T"] == pytest.approx(29.0 + 14 / 24)
    assert a["monetary_value"] == pytest.approx(40.0)  # repeat purchases only: (30 + 50) / 2
    assert (a["first_value"], a["total_value"]) == (15.0, 95.0)
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0, 0)
    assert s.loc["nobody"].isna().all()


def test_label_frame_counts_only_the_window_after_the_cutoff():
    orders = orders_frame([
        ("a", "2024-01-10", 10.0), ("a", "2024-02-01 00:00", 7.0),  # exactly at the cutoff: history, not label
        ("a", "2024-02-05", 20.0), ("a", "2024-02-05 12:00", 1.0), ("a", "2024-03-15", 40.0),  # 03-15 is outside
        ("b", "2024-02-03", 5.0),  # first order after the cutoff: not a row
        ("c", "2024-01-20", 3.0),
    ])
    customers = pd.DataFrame({"customer_id": ["a", "b", "c"]})
    frame = ltv.label_frame(orders, customers, ts("2024-02-01"), horizon_days=30)
    assert frame["customer_id"].tolist() == ["a", "c"]
    assert frame[ltv.LABEL].tolist() == [21.0, 0.0]
    assert frame["future_purchases"].tolist() == [1.0, 0.0]


def test_cutoffs_are_weekly_and_training_labels_end_before_the_holdout():
    end = ts("2025-06-30")
    params = ltv.LTVParams(horizon_days=180, n_train_cutoffs=4, cutoff_spacing_days=28)
    train, holdout = ltv.cutoffs(end, params)
    assert all((end - c) % pd.Timedelta(days=7) == pd.Timedelta(0) for c in [*train, holdout])
    assert holdout + pd.Timedelta(days=180) <= end
    assert max(train) + pd.Timedelta(days=180) <= holdout
    assert train == sorted(train) and len(set(train)) == 4


def test_regression_metrics_by_hand():
    y = np.array([0.0, 0.0, 10.0, 90.0] + [0.0] * 6)
    pred = np.array([1.0, 0.0, 5.0, 50.0] + [0.0] * 6)
    m = ltv.regression_metrics(y, pred)
    assert m["mae"] == pytest.approx((1 + 5 + 40) / 10)
    assert m["rmse"] == pytest.approx(np.sqrt((1 + 25 + 1600) / 10))
    assert m["top_decile_capture"] == pytest.approx(0.9)  # the top 1 of 10 predicted holds 90 of 100
    assert m["calibration_ratio"] == pytest.approx(56 / 100)
    assert ltv.regression_metrics(y, np.zeros(10))["spearman"] == 0.0  # undefined for a constant prediction


def test_bgnbd_recovers_known_parameters():
    rng = np.random.default_rng(0)
    true = {"r": 2.0, "alpha": 50.0, "a": 1.5, "b": 6.0}
    sim = btyd.simulate_bgnbd(rng, rng.uniform(190, 270, 6000), **true, horizon=180)
    fitted = btyd.BetaGeo().fit(sim["frequency"], sim["recency"], sim["T"])
    for name, value in true.items():
        assert fitted.params[name] == pytest.approx(value, rel=0.2), name
    # The quantities the model is used for are recovered much more tightly than the parameters.
    known = btyd.BetaGeo(**true)
    assert fitted.expected_purchases_new(180.0) == pytest.approx(known.expected_purchases_new(180.0), rel=0.03)
    expected = known.expected_purchases(180.0, sim["frequency"], sim["recency"], sim["T"])
    assert expected.mean() == pytest.approx(sim["future"].mean(), rel=0.05)
    assert known.p_alive(sim["frequency"], sim["recency"], sim["T"]).mean() == pytest.approx(sim["alive"].mean(),
                                                                                            abs=0.02)


def test_bgnbd_conditional_expectation_closed_form_matches_quadrature():
    model = btyd.BetaGeo(r=0.243, alpha=30.9, a=0.793, b=2.426)  # CDNOW-like, a < 1
    x = np.array([0.0, 1.0, 3.0, 10.0, 25.0])
    tx = np.array([0.0, 20.0, 100.0, 150.0, 40.0])
    T = np.full(5, 200.0)
    closed = model.expected_purchases(90.0, x, tx, T)
    assert np.allclose(closed, model._quadrature(90.0, x, tx, T), rtol=1e-8)
    p = model.p_alive(x, tx, T)
    assert p[0] == 1.0 and np.all((p > 0) & (p <= 1))
    # Same history, last purchase longer ago: less likely alive, fewer purchases expected.
    later = model.expected_purchases(90.0, x[1:], tx[1:] + 30, T[1:])
    earlier = model.expected_purchases(90.0, x[1:], tx[1:], T[1:])
    assert np.all(later > earlier)


def test_gamma_gamma_recovers_the_spend_distribution():
    rng = np.random.default_rng(1)
    p, q, v = 6.0, 4.0, 15.0
    x = rng.integers(1, 10, 4000)
    nu = rng.gamma(q, 1 / v, x.size)
    m = np.array([rng.gamma(p, 1 / n, k).mean() for n, k in zip(nu, x, strict=True)])
    fitted = btyd.GammaGamma().fit(x, m)
    assert fitted.population_mean == pytest.approx(p * v / (q - 1), rel=0.05)
    assert fitted.q == pytest.approx(q, rel=0.25)
    # Posterior mean shrinks an individual's observed mean towards the population mean, less so with more purchases.
    one, many = fitted.expected_value([1, 20], [100.0, 100.0])
    assert fitted.population_mean < one < many < 100.0


def test_not_enough_history_is_a_clear_error(tmp_path):
    tables = tables_from_transactions(pd.DataFrame({
        "customer_id": ["a", "a", "b"], "date": ["2024-01-01", "2024-02-01", "2024-03-01"], "amount": [1.0, 2.0, 3.0],
    }))
    ctx = DataContext(settings=Settings(home=tmp_path / "home"), batch_dir=write_batch(tables, tmp_path / "b"),
                      batch_id="b")
    with pytest.raises(ValueError, match="not enough history"):
        ltv.prepare(ctx, ltv.LTVParams())


# ------------------------------------------------------------------------------------------------ trained model


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from pipelines.data.generator import generate
    from pipelines.features import build, store

    tmp = tmp_path_factory.mktemp("ltv")
    batch = generate(tmp / "landing", tmp / "truth", customers=300, seed=11)
    settings = Settings(home=tmp / "home")
    build.build_feature_tables(batch.batch_dir, settings)
    store.apply(settings)
    ctx = DataContext(settings=settings, batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir)
    params = ltv.LTVParams()
    data = ltv.prepare(ctx, params)
    model = ltv.fit(data, params)
    return ctx, params, data, model


def test_data_set_is_split_by_time_without_overlap(generated):
    _, params, data, _ = generated
    assert data.holdout["event_timestamp"].nunique() == 1
    assert data.train["event_timestamp"].max() + pd.Timedelta(days=params.horizon_days) <= data.holdout_cutoff
    assert data.features[-len(SUMMARY_COLUMNS):] == SUMMARY_COLUMNS
    assert data.oracle is not None and data.oracle.notna().all()
    assert set(data.baselines) == {"bgnbd_gamma_gamma", "last_period_spend"}


def test_predictions_are_non_negative_and_deterministic(generated):
    _, params, data, model = generated
    pred = ltv.predict(model, data.holdout)
    assert np.isfinite(pred).all() and (pred >= 0).all()
    again = ltv.fit(data, params)
    assert np.array_equal(ltv.predict(again, data.holdout), pred)


def test_frequent_recent_buyer_is_worth_more_than_a_lapsed_twin(generated):
    _, _, data, model = generated
    row = data.holdout.iloc[[0]][data.features].copy()
    row[:] = 0.0
    T = 300.0
    active = row.assign(btyd_frequency=12.0, btyd_recency=T - 3, btyd_T=T, btyd_monetary=80.0, recency_days=3.0,
                        frequency_90d=4.0, monetary_90d=320.0, frequency_365d=13.0, monetary_365d=1040.0,
                        avg_order_value=80.0, tenure_days=T + 5, views_7d=4.0, views_30d=12.0, carts_30d=2.0,
                        purchases_30d=1.0, active_days_30d=5.0, cart_to_purchase_30d=0.5, n_categories_90d=2.0,
                        top_category_share_90d=0.75)
    # Identical, except that they bought less often and not for 200 days (and so show no recent activity).
    lapsed = active.assign(btyd_frequency=3.0, btyd_recency=T - 200, recency_days=200.0, frequency_90d=0.0,
                           monetary_90d=0.0, frequency_365d=4.0, monetary_365d=320.0, views_7d=0.0, views_30d=0.0,
                           carts_30d=0.0, purchases_30d=0.0, active_days_30d=0.0, cart_to_purchase_30d=0.0,
                           n_categories_90d=0.0, top_category_share_90d=0.0)
    value_active, value_lapsed = ltv.predict(model, pd.concat([active, lapsed]))
    assert value_active > 2 * value_lapsed > 0


def test_model_beats_naive_baseline_and_oracle_beats_model(generated):
    _, params, data, model = generated
    ev = ltv.evaluate(model, data, params)
    assert ev.metrics["mae"] == pytest.approx(ltv.score(model, data))
    assert set(ev.baselines) == {"bgnbd_gamma_gamma", "last_period_spend", "xgboost_feast_only"}
    assert ev.metrics["mae"] < ev.baselines["last_period_spend"]
    assert ev.oracle is not None and ev.oracle < ev.metrics["mae"]
    assert ev.metrics["oracle_spearman"] > ev.metrics["spearman"] > 0.3
    assert {"gains.png", "decile_calibration.png", "bgnbd_holdout_purchases.png"} <= set(ev.figures)
    assert not set(AGE_CONFOUNDED) & set(model.tree_features_)


def test_logged_model_loads_back_and_scores_the_same(generated, tmp_path):
    import mlflow

    from pipelines import tracking

    ctx, _, data, model = generated
    settings = Settings(home=tmp_path / "home")
    tracking.configure(settings)
    with mlflow.start_run(experiment_id=tracking.experiment_for(settings, "ltv")):
        info = ltv.log_model(model, data)
    assert mlflow.models.get_model_info(info.model_uri).flavors["sklearn"]["serialization_format"] == "skops"
    loaded = ltv.load_model(info.model_uri)
    assert isinstance(loaded, LTVRegressor)
    assert np.allclose(ltv.predict(loaded, data.holdout), ltv.predict(model, data.holdout))
    assert ltv.score(loaded, data) == pytest.approx(ltv.score(model, data))


# ------------------------------------------------------------------------------------------------ bring your own data


def transaction_log(seed: int = 3, customers: int = 150, days: int = 300) -> pd.DataFrame:
    """A hand-rolled shop: each customer buys at their own Poisson rate until they silently leave."""
    rng = np.random.default_rng(seed)
    start = ts("2024-01-01")
    rows = []
    for i in range(customers):
        first = rng.uniform(0, days * 0.6)
        leave = first + rng.exponential(250)
        rate, spend = rng.gamma(2.0, 1 / 40), rng.gamma(3.0, 15.0)
        t = first
        while t < min(leave, days):
            rows.append((f"u{i:03d}", start + pd.Timedelta(days=t), round(rng.gamma(4.0, spend / 4), 2)))
            t += rng.exponential(1 / rate)
    return pd.DataFrame(rows, columns=["customer_id", "date", "amount"])


def test_bring_your_own_transaction_log_trains_without_an_oracle(tmp_path):
    from pipelines.features import build, store

    tables = tables_from_transactions(transaction_log())
    assert tables["events"].empty and len(tables["products"]) == 1
    batch_dir = write_batch(tables, tmp_path / "batch")
    settings = Settings(home=tmp_path / "home")
    build.build_feature_tables(batch_dir, settings)
    store.apply(settings)
    ctx = DataContext(settings=settings, batch_dir=batch_dir, batch_id="byo", truth_dir=None)
    params = ltv.LTVParams(horizon_days=56, n_train_cutoffs=3, cutoff_spacing_days=14)
    data = ltv.prepare(ctx, params)
    assert data.oracle is None
    # No events: behavioural features are all zero, only the order-based ones carry information.
    assert (data.train[["views_30d", "carts_30d"]] == 0).all().all()
    model = ltv.fit(data, params)
    ev = ltv.evaluate(model, data, params)
    assert ev.oracle is None and not any(k.startswith("oracle_") for k in ev.metrics)
    assert np.isfinite(ev.metrics["mae"]) and (ltv.predict(model, data.holdout) >= 0).all()
    assert ev.metrics["spearman"] > 0.2
