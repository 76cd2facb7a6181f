"""Model tier: behavioural checks on a churn model trained on a small generated shop."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.data.generator import generate
from pipelines.features import store
from pipelines.features.build import build_feature_tables
from pipelines.models import churn
from pipelines.settings import Settings
from pipelines.spec import DataContext


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    home = tmp_path_factory.mktemp("churn") / "home"
    settings = Settings(home=home)
    batch = generate(settings.landing_dir, settings.truth_dir, customers=400, seed=11)
    build_feature_tables(batch.batch_dir, settings)
    store.apply(settings)
    ctx = DataContext(settings=settings, batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir)
    params = churn.ChurnParams(n_estimators=150)
    data = churn.prepare(ctx, params)
    return data, churn.fit(data, params), params


def test_split_is_by_time_and_labels_are_binary(trained):
    data, _, _ = trained
    assert data.train["event_timestamp"].max() < data.holdout["event_timestamp"].min()
    assert set(data.train["churned"].unique()) == {0, 1}
    assert "recency_days" in data.features and not {"customer_id", "churned"} & set(data.features)


def test_churn_rises_when_recency_grows(trained):
    data, model, _ = trained
    rows = data.holdout.head(200).copy()
    base = churn.predict_proba(model, rows)
    rows["recency_days"] += 60
    later = churn.predict_proba(model, rows)
    assert np.all(later >= base - 1e-9)
    assert later.mean() > base.mean()


def test_probabilities_are_valid_and_order_invariant(trained):
    data, model, _ = trained
    p = churn.predict_proba(model, data.holdout)
    assert np.all((p >= 0) & (p <= 1))
    shuffled = data.holdout.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(churn.predict_proba(model, shuffled), p[shuffled.index.to_numpy()])


def test_model_beats_chance_and_oracle_bounds_it(trained):
    data, model, params = trained
    ev = churn.evaluate(model, data, params)
    assert ev.metrics["auc"] > 0.75
    assert ev.oracle is not None and ev.oracle > 0.75
    assert ev.metrics["auc"] <= ev.oracle + 0.05  # the oracle knows the hidden state: a model far above it is a leak


def test_training_is_deterministic(trained):
    data, model, params = trained
    again = churn.fit(data, params)
    np.testing.assert_array_equal(churn.predict_proba(again, data.holdout), churn.predict_proba(model, data.holdout))
