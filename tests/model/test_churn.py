"""Model tier: behavioural checks on a churn model trained on a small generated shop, and on a customers-only batch
with attribute columns and a provided label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipelines.data.generator import generate
from pipelines.data.io import store_batch
from pipelines.features import store
from pipelines.features.build import build_feature_tables
from pipelines.models.churn.data import FIT, VALIDATE, prepare
from pipelines.models.churn.evaluation import evaluate
from pipelines.models.churn.model import CANDIDATES, candidate, fit, holdout, metric, predict_proba
from pipelines.models.churn.params import ChurnParams
from pipelines.models.churn.serving import ChurnPredictor
from pipelines.settings import Settings
from pipelines.spec import DataContext

PARAMS = ChurnParams(n_estimators=200)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    home = tmp_path_factory.mktemp("churn") / "home"
    settings = Settings(home=home)
    batch = generate(settings.landing_dir, settings.truth_dir, customers=400, seed=11)
    build_feature_tables(batch.batch_dir, settings)
    store.apply(settings)
    return settings, batch


@pytest.fixture(scope="module")
def trained(shop):
    settings, batch = shop
    ctx = DataContext(settings=settings, batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir)
    data = prepare(ctx, PARAMS)
    return data, fit(data, PARAMS), PARAMS


def test_split_is_by_time_and_labels_are_binary(trained):
    data, _, _ = trained
    assert data.train["event_timestamp"].max() < data.holdout["event_timestamp"].min()
    assert set(data.train["churned"].unique()) == {0, 1}
    assert "recency_days" in data.features and not {"customer_id", "churned"} & set(data.columns)
    # The validation part is the last training cutoff, fitted on cutoffs whose label windows end before it.
    val = data.train[data.split == VALIDATE]["event_timestamp"]
    fit_rows = data.train[data.split == FIT]["event_timestamp"]
    assert val.nunique() == 1 and val.iloc[0] == data.train["event_timestamp"].max()
    assert fit_rows.max() + pd.Timedelta(days=PARAMS.horizon_days) <= val.iloc[0]


def test_customer_attributes_are_features(trained):
    data, model, _ = trained
    assert {"region", "segment"} <= set(data.categorical)
    assert {"region", "segment"} <= set(model.columns)
    assert data.attributes is not None and len(data.attributes) >= data.holdout["customer_id"].nunique()
    assert data.counts["labelled_left_out"] == 0


def test_churn_rises_when_recency_grows(trained):
    data, _, params = trained
    xgb = candidate("model", data, params, data.train, trees=100)
    rows = data.holdout.head(200).copy()
    base = xgb.predict_proba(rows)
    rows["recency_days"] += 60
    later = xgb.predict_proba(rows)
    assert np.all(later >= base - 1e-9)
    assert later.mean() > base.mean()


def test_probabilities_are_valid_and_order_invariant(trained):
    data, model, _ = trained
    p = predict_proba(model, data.holdout)
    assert np.all((p >= 0) & (p <= 1))
    shuffled = data.holdout.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(predict_proba(model, shuffled), p[shuffled.index.to_numpy()])


def test_registered_candidate_matches_its_best_baseline_and_the_oracle_bounds_it(trained):
    data, model, params = trained
    ev = evaluate(model, data, params)
    best = max(ev.baselines.values())
    assert ev.metrics["auc"] > 0.75
    # Selection happens on the validation split, so the holdout may differ by noise, never by a real margin.
    assert ev.metrics["auc"] >= best - 0.02, (ev.metrics["auc"], ev.baselines)
    assert ev.oracle is not None and ev.oracle > 0.75
    assert ev.metrics["auc"] <= ev.oracle + 0.05  # the oracle knows the hidden state: a model far above it is a leak


def test_selection_picks_the_best_validation_candidate(trained):
    data, model, params = trained
    ev = evaluate(model, data, params)
    assert set(ev.selection) == set(CANDIDATES)
    assert ev.candidate == max(ev.selection, key=ev.selection.get) == model.candidate
    assert set(ev.units) == set(ev.baselines)


def test_holdout_frame_and_metric_agree_with_the_reported_auc(trained):
    data, model, params = trained
    ev = evaluate(model, data, params)
    units = holdout(model, data)
    assert units.index.is_unique and list(units.columns) == ["y", "p"]
    assert metric(units) == pytest.approx(ev.metrics["auc"], abs=1e-12)
    for name, frame in ev.units.items():
        assert frame.index.equals(units.index)
        assert metric(frame) == pytest.approx(ev.baselines[name], abs=1e-12)
    resample = units.sample(frac=1.0, replace=True, random_state=1)
    assert 0.0 <= metric(resample) <= 1.0
    assert math.isnan(metric(units[units["y"] == 1]))


def test_truth_feeds_only_the_oracle(shop, trained):
    settings, batch = shop
    data, model, params = trained
    blind = prepare(DataContext(settings=settings, batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                                truth_dir=None), params)
    assert blind.oracle is None and data.oracle is not None
    pd.testing.assert_frame_equal(blind.train, data.train)
    pd.testing.assert_frame_equal(blind.holdout, data.holdout)
    np.testing.assert_array_equal(predict_proba(fit(blind, params), blind.holdout),
                                  predict_proba(model, data.holdout))


def test_training_is_deterministic(trained):
    data, model, params = trained
    again = fit(data, params)
    assert again.candidate == model.candidate
    np.testing.assert_array_equal(predict_proba(again, data.holdout), predict_proba(model, data.holdout))


# ---------------------------------------------------------------- customers only: attributes and a provided label
def _telco(n: int, seed: int) -> pd.DataFrame:
    """Customers with attribute columns (as CSV text) whose churn depends on a plan and a number of calls."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "intl"], n)
    calls = rng.poisson(1.5, n)
    minutes = rng.normal(180, 50, n).round(1)
    logit = -2.5 + 1.8 * (plan == "intl") + 0.9 * np.maximum(calls - 2, 0) + 0.01 * (minutes - 180)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    labelled = np.arange(n) < int(0.8 * n)
    return pd.DataFrame({
        "customer_id": [f"T{i:05d}" for i in range(n)],
        "signup_ts": "2024-01-01T00:00:00Z",
        "plan": plan, "service_calls": calls.astype(str), "day_minutes": minutes.astype(str),
        "churned": np.where(labelled, churned.astype(int).astype(str), ""),
    })


@pytest.fixture(scope="module")
def telco(tmp_path_factory):
    settings = Settings(home=tmp_path_factory.mktemp("telco") / "home")
    table = _telco(1200, seed=3)
    batch_id, batch_dir = store_batch({"customers": table}, settings.landing_dir)
    ctx = DataContext(settings=settings, batch_dir=batch_dir, batch_id=batch_id)
    data = prepare(ctx, PARAMS)
    return table, data, fit(data, PARAMS)


def test_customers_only_batch_trains_on_its_attributes(telco):
    table, data, model = telco
    assert data.features == [] and data.holdout_cutoff is None
    assert data.numeric == ["service_calls", "day_minutes"] and data.categorical == ["plan"]
    labelled = int((table["churned"] != "").sum())
    assert data.counts["labelled_customers"] == labelled == len(data.train) + len(data.holdout)
    assert data.counts["labelled_left_out"] == 0
    assert data.counts["unlabelled_customers"] == len(table) - labelled
    assert metric(holdout(model, data)) > 0.7


def test_served_predictor_scores_unlabelled_customers_from_the_kept_attributes(telco):
    table, data, model = telco
    predictor = ChurnPredictor(model, feast=None)
    unlabelled = table.loc[table["churned"] == "", "customer_id"].tolist()[:5]
    some = data.holdout["customer_id"].tolist()[:5]
    p = predictor.infer_ids(np.array([*some, "NOPE", *unlabelled], dtype=object))
    assert np.isnan(p[5]) and not np.isnan(np.delete(p, 5)).any()
    np.testing.assert_allclose(p[:5], model.predict_proba(data.holdout.head(5)))


@pytest.mark.parametrize("name", CANDIDATES)
def test_served_scores_equal_the_fitted_pipeline_for_every_candidate(shop, trained, name):
    """The serving path encodes rows itself when it can (a tree on passed-through numbers and one-hot attributes):
    its scores are the fitted pipeline's, for customers with features, with attributes only, and unknown."""
    from pipelines.models.churn.data import FEATURE_SERVICE
    from pipelines.serving import feast_predictor

    settings, _ = shop
    data, _, params = trained
    store.materialize(settings)
    model = candidate(name, data, params, data.train)
    model.attributes = data.attributes  # as `fit` keeps them with the version
    feast = feast_predictor(settings, None, model.features, FEATURE_SERVICE)
    fast, slow = ChurnPredictor(model, feast), ChurnPredictor(model, feast)
    slow._fast = None
    assert (fast._fast is not None) == (name == "model")  # the scaled linear model keeps its pipeline
    ids = np.array([*data.holdout["customer_id"].head(20), *data.train["customer_id"].head(20), "NOPE"],
                   dtype=object)
    p_fast, p_slow = fast.infer_ids(ids), slow.infer_ids(ids)
    np.testing.assert_allclose(p_fast, p_slow, rtol=1e-6, equal_nan=True)
    assert np.isnan(p_fast[-1]) and not np.isnan(p_fast[:-1]).any()
