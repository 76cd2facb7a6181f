"""Feature contributions: contributions plus bias equal the model's margin, for trees and linear models."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from pipelines.explain import NotExplainable, contributions, summary_figure

NAMES = ["recency", "frequency", "monetary", "noise"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 2] + rng.normal(scale=0.5, size=400) > 0).astype(int)
    return x, y


def test_tree_shap_sums_to_the_margin_and_finds_the_signal(data) -> None:
    x, y = data
    model = XGBClassifier(n_estimators=40, max_depth=3, random_state=0).fit(
        pd.DataFrame(x, columns=NAMES), y)
    c = contributions(model, x, NAMES)
    margin = model.predict(pd.DataFrame(x, columns=NAMES), output_margin=True)
    np.testing.assert_allclose(c.bias + c.values.sum(axis=1), margin, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(c.margin, margin, rtol=1e-5, atol=1e-5)
    importance = np.abs(c.values).mean(axis=0)
    assert importance.argmax() == 1 and importance[3] < importance[2]  # the planted weights, not the noise
    top = c.top(0, x[0], 2)
    assert len(top) == 2 and abs(top[0]["contribution"]) >= abs(top[1]["contribution"])


def test_regressor_margin_is_the_prediction(data) -> None:
    x, _ = data
    target = 3 * x[:, 0] + x[:, 2]
    model = XGBRegressor(n_estimators=30, max_depth=3, random_state=0).fit(x, target)
    c = contributions(model, x, [f"f{i}" for i in range(4)])
    np.testing.assert_allclose(c.bias + c.values.sum(axis=1), model.predict(x), rtol=1e-4, atol=1e-4)


def test_scaled_logistic_regression_splits_its_log_odds(data) -> None:
    x, y = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    c = contributions(model, x, NAMES)
    np.testing.assert_allclose(c.bias + c.values.sum(axis=1), model.decision_function(x), rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(c.margin, model.decision_function(x), rtol=1e-8, atol=1e-8)
    plain = LinearRegression().fit(x, x[:, 0])
    np.testing.assert_allclose(contributions(plain, x, NAMES).margin, plain.predict(x), atol=1e-8)


def test_models_without_an_exact_split_say_so(data) -> None:
    x, y = data
    with pytest.raises(NotExplainable, match="neither an XGBoost nor|changes the number of features"):
        contributions(make_pipeline(PolynomialFeatures(2), LogisticRegression(max_iter=200)).fit(x, y), x, NAMES)
    with pytest.raises(NotExplainable):
        contributions(object(), x, NAMES)


def test_summary_figure_draws_the_top_features(data) -> None:
    import matplotlib

    matplotlib.use("Agg")
    x, y = data
    c = contributions(XGBClassifier(n_estimators=10, random_state=0).fit(x, y), x, [f"f{i}" for i in range(4)])
    fig = summary_figure(c, x, top=3)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 3 and labels[-1] == "f1"


@pytest.mark.parametrize("scale", [False, True])
def test_encoded_attributes_are_explained_per_input_column(data, scale: bool) -> None:
    """One-hot levels and missing-value indicators fold back into their column; the split stays exact."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    from pipelines.explain import grouped_contributions

    x, y = data
    frame = pd.DataFrame(x[:, :2], columns=["region_code", "spend"])
    frame.loc[::7, "spend"] = np.nan
    frame["region"] = np.where(x[:, 2] > 0, "north", "south")
    num = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()) if scale \
        else "passthrough"
    encode = ColumnTransformer([("numeric", num, ["region_code", "spend"]),
                                ("categorical", OneHotEncoder(sparse_output=False), ["region"])])
    model = make_pipeline(encode, LogisticRegression() if scale else XGBClassifier(n_estimators=20, random_state=0))
    model.fit(frame, y)
    c = grouped_contributions(model, frame)
    assert c.names == ["region_code", "spend", "region"]
    margin = model.decision_function(frame) if scale else model.predict_proba(frame)[:, 1]
    if not scale:
        margin = np.log(margin / (1 - margin))
    np.testing.assert_allclose(c.bias + c.values.sum(axis=1), margin, rtol=1e-4, atol=1e-4)
    assert c.top(0, frame.to_numpy(dtype=object)[0], 3)[0]["feature"] in c.names
