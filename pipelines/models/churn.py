"""Churn: will a customer with purchase history place no order in the next ``horizon_days``?

Label at cutoff ``c``: no order in ``(c, c + horizon]``, for customers with at least one order by ``c``.
Features come from Feast (FeatureService ``churn_v1``) as of each cutoff, point-in-time correct.
Split by time: several earlier cutoffs train the model, the last cutoff whose label window fits the data is the
holdout. Baseline: standardised logistic regression on the same features. Oracle: the generator's true churn
probability given each customer's hidden purchase rate, churn hazard and whether they are still alive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.serving import CustomerIds, batch_values, feast_predictor
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedItem, ServedResponse, ServingSpec

FEATURE_SERVICE = "churn_v1"


class ChurnParams(ModelParams):
    """Hyper-parameters of the churn model (override with ``--set key=value``)."""

    horizon_days: int = Field(56, ge=7, le=365, description="Label window after the cutoff, in days.")
    n_train_cutoffs: int = Field(4, ge=1, le=52)
    cutoff_spacing_days: int = Field(28, ge=7, description="Days between training cutoffs (multiple of 7).")
    n_estimators: int = Field(300, ge=1, le=5000)
    max_depth: int = Field(4, ge=1, le=16)
    learning_rate: float = Field(0.05, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    holdout_fraction: float = Field(0.25, gt=0, lt=1, description=(
        "Share of customers held out (stratified) when the customers table carries a `churned` label."))


@dataclass
class ChurnData:
    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    holdout_cutoff: pd.Timestamp
    oracle: pd.Series | None
    """True churn probability of each holdout row (aligned with ``holdout``), or ``None``."""


def label_frame(orders: pd.DataFrame, customers: pd.DataFrame, cutoff: pd.Timestamp,
                horizon_days: int) -> pd.DataFrame:
    """Entity rows for one cutoff: customers with an order by ``cutoff``, labelled 1 if no order follows."""
    before = orders.loc[orders["order_ts"] <= cutoff, "customer_id"].unique()
    window_end = cutoff + pd.Timedelta(days=horizon_days)
    after = orders.loc[(orders["order_ts"] > cutoff) & (orders["order_ts"] <= window_end), "customer_id"].unique()
    ids = pd.Index(before).intersection(pd.Index(customers["customer_id"]))
    return pd.DataFrame({
        "customer_id": ids.astype(str),
        "event_timestamp": cutoff,
        "churned": (~ids.isin(after)).astype(int),
    })


def cutoffs(snapshot_end: pd.Timestamp, params: ChurnParams) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cutoffs and the holdout cutoff, aligned to the weekly feature snapshots.

    The holdout's label window ends at the data's end; each training label window ends before the holdout
    cutoff, so no training label overlaps the holdout period.
    """
    week = pd.Timedelta(days=7)
    horizon_weeks = -(-params.horizon_days // 7)
    holdout = snapshot_end - horizon_weeks * week
    spacing = max(1, params.cutoff_spacing_days // 7) * week
    last_train = holdout - horizon_weeks * week
    train = [last_train - k * spacing for k in range(params.n_train_cutoffs)]
    return sorted(train), holdout


def provided_labels(customers: pd.DataFrame, orders: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Entity rows from a ``churned`` column: labelled customers who had signed up before ``cutoff``.

    The label is known at the data's end; features are read at ``cutoff`` (``horizon_days`` earlier), so the
    behaviour that made a customer churn (the missing orders) is not in the inputs.
    """
    labelled = customers[customers["churned"].notna() & (customers["signup_ts"] < cutoff)]
    return pd.DataFrame({
        "customer_id": labelled["customer_id"].astype(str).to_numpy(),
        "event_timestamp": cutoff,
        "churned": labelled["churned"].astype(int).to_numpy(),
    })


def _stratified_holdout(labels: pd.Series, fraction: float, seed: int) -> np.ndarray:
    """Holdout mask drawing ``fraction`` of each class (at least one per class), seeded."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for value in sorted(labels.unique()):
        idx = np.flatnonzero(labels.to_numpy() == value)
        n = min(len(idx) - 1, max(1, int(round(fraction * len(idx)))))
        if n > 0:
            mask[rng.choice(idx, size=n, replace=False)] = True
    return mask


def prepare(ctx: DataContext, params: ChurnParams) -> ChurnData:
    """Labelled customer rows with their Feast features as of each cutoff, split into train and holdout.

    Labels come from the customers' ``churned`` column when the batch provides one (features at
    ``horizon_days`` before the data's end, a stratified random holdout of customers); otherwise they are derived
    from the orders at several cutoffs (time split, see the module doc).

    Raises:
        pipelines.data.kinds.MissingDataError: if the batch has no customers or no orders.
        ValueError: if the history is too short or the labels have a single class.
    """
    from pipelines.data.kinds import require, table_or_empty
    from pipelines.features import store
    from pipelines.features.build import snapshot_end

    require(ctx, "churn")
    orders, customers = ctx.table("orders"), ctx.table("customers")
    end = snapshot_end(table_or_empty(ctx, "events"), orders)
    if customers["churned"].notna().any():
        return _prepare_provided(ctx, params, customers, orders, end)
    train_cuts, holdout_cut = cutoffs(end, params)
    if train_cuts[0] <= orders["order_ts"].min():
        raise ValueError(
            f"not enough history for churn: first training cutoff {train_cuts[0].date()} precedes the first order; "
            "lower n_train_cutoffs/horizon_days or bring more history"
        )
    entities = pd.concat([label_frame(orders, customers, c, params.horizon_days) for c in train_cuts + [holdout_cut]],
                         ignore_index=True)
    frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE)
    features = [c for c in store.feature_names(ctx.settings, FEATURE_SERVICE) if c in frame.columns]
    frame[features] = frame[features].astype("float64")
    frame = frame.sort_values(["event_timestamp", "customer_id"]).reset_index(drop=True)
    is_holdout = frame["event_timestamp"] == holdout_cut
    train, holdout = frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)
    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.data.generator import churn_probability, load_truth

        truth, _, _ = load_truth(ctx.truth_dir)
        probs = churn_probability(truth, holdout_cut, params.horizon_days)
        oracle = holdout["customer_id"].map(probs).astype(float)
    if train["churned"].nunique() < 2 or holdout["churned"].nunique() < 2:
        raise ValueError("churn labels have a single class in train or holdout; need more customers or history")
    return ChurnData(train, holdout, features, holdout_cut, oracle)


def _prepare_provided(ctx: DataContext, params: ChurnParams, customers: pd.DataFrame, orders: pd.DataFrame,
                      end: pd.Timestamp) -> ChurnData:
    """The data set from a provided ``churned`` label (no oracle: the label is the only truth there is)."""
    from pipelines.features import store

    cutoff = end - -(-params.horizon_days // 7) * pd.Timedelta(days=7)  # on the weekly snapshot grid
    entities = provided_labels(customers, orders, cutoff)
    if entities.empty:
        raise ValueError(f"no customer with a churned label signed up before {cutoff.date()} (horizon_days="
                         f"{params.horizon_days} before the data's end); lower horizon_days or bring more history")
    frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE)
    features = [c for c in store.feature_names(ctx.settings, FEATURE_SERVICE) if c in frame.columns]
    frame[features] = frame[features].astype("float64")
    frame = frame.sort_values("customer_id").reset_index(drop=True)
    if frame["churned"].value_counts().min() < 2 or frame["churned"].nunique() < 2:
        raise ValueError("churn labels need at least 2 customers of each class (churned 0 and 1) signed up before "
                         f"{cutoff.date()}")
    is_holdout = _stratified_holdout(frame["churned"], params.holdout_fraction, params.seed)
    train, holdout = frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)
    return ChurnData(train, holdout, features, cutoff, None)


def fit(data: ChurnData, params: ChurnParams):
    import xgboost as xgb

    from pipelines.utils import pick_device

    # Domain prior: all else equal, a longer time since the last order never lowers churn risk. It also makes the
    # model's behaviour explainable to shop teams and testable (tests/model/test_churn.py).
    constraints = {"recency_days": 1} if "recency_days" in data.features else {}
    model = xgb.XGBClassifier(
        monotone_constraints=constraints,
        n_estimators=params.n_estimators, max_depth=params.max_depth, learning_rate=params.learning_rate,
        subsample=params.subsample, colsample_bytree=params.colsample_bytree,
        min_child_weight=params.min_child_weight, random_state=params.seed, n_jobs=2,
        device=pick_device(), eval_metric="auc", tree_method="hist",
    )
    model.fit(data.train[data.features], data.train["churned"],
              eval_set=[(data.train[data.features], data.train["churned"]),
                        (data.holdout[data.features], data.holdout["churned"])], verbose=False)
    return model


def predict_proba(model, frame: pd.DataFrame) -> np.ndarray:
    """Churn probability for rows of ``frame`` using the model's own feature order."""
    names = list(model.get_booster().feature_names)
    return model.predict_proba(frame[names].astype("float64"))[:, 1]


def score(model, data: ChurnData) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(data.holdout["churned"], predict_proba(model, data.holdout)))


def _baseline(data: ChurnData, params: ChurnParams) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=params.seed))
    lr.fit(data.train[data.features], data.train["churned"])
    return lr.predict_proba(data.holdout[data.features])[:, 1]


def evaluate(model, data: ChurnData, params: ChurnParams) -> Evaluation:
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score, roc_curve

    y = data.holdout["churned"].to_numpy()
    p = predict_proba(model, data.holdout)
    p_base = _baseline(data, params)
    metrics = {
        "auc": roc_auc_score(y, p), "pr_auc": average_precision_score(y, p),
        "logloss": log_loss(y, p, labels=[0, 1]), "brier": brier_score_loss(y, p),
        "holdout_rows": float(len(y)), "train_rows": float(len(data.train)), "holdout_churn_rate": float(y.mean()),
    }
    oracle_auc = float(roc_auc_score(y, data.oracle)) if data.oracle is not None else None

    curves = {"xgboost": p, "logistic baseline": p_base}
    if data.oracle is not None:
        curves["oracle"] = data.oracle.to_numpy()
    roc_fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Churn ROC (holdout)")
    ax.legend(loc="lower right")

    cal_fig, ax = plt.subplots(figsize=(5, 5))
    for name, scores in curves.items():
        frac, mean = calibration_curve(y, np.clip(scores, 0, 1), n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="predicted churn probability", ylabel="observed churn rate", title="Calibration (holdout)")
    ax.legend()

    imp = pd.Series(model.get_booster().get_score(importance_type="gain")).reindex(data.features).fillna(0)
    imp_fig, ax = plt.subplots(figsize=(6, 0.35 * len(imp) + 1))
    imp.sort_values().plot.barh(ax=ax)
    ax.set(xlabel="gain", title="Feature importance")
    imp_fig.tight_layout()

    evals = model.evals_result()
    curve_fig, ax = plt.subplots(figsize=(6, 4))
    for split, name in (("validation_0", "train"), ("validation_1", "holdout")):
        ax.plot(evals[split]["auc"], label=name)
    ax.set(xlabel="boosting round", ylabel="AUC", title="Learning curve")
    ax.legend()

    return Evaluation(
        metrics=metrics,
        baselines={"logistic_regression": float(roc_auc_score(y, p_base))},
        oracle=oracle_auc,
        figures={"roc.png": roc_fig, "calibration.png": cal_fig, "feature_importance.png": imp_fig,
                 "learning_curve.png": curve_fig},
        extra_params={"holdout_cutoff": str(data.holdout_cutoff.date()), "features": ",".join(data.features)},
    )


def log_model(model, data: ChurnData):
    import mlflow
    from mlflow.models import infer_signature

    example = data.holdout[data.features].head(5)
    signature = infer_signature(example, predict_proba(model, example))
    return mlflow.xgboost.log_model(model, name="model", signature=signature, input_example=example,
                                    model_format="ubj")


def load_model(uri: str):
    import mlflow

    return mlflow.xgboost.load_model(uri)


# ------------------------------------------------------------------------------------------------ serving


class ChurnRequest(ApiModel):
    customer_ids: CustomerIds


class ChurnPrediction(ServedItem):
    customer_id: str
    churn_probability: float = Field(ge=0, le=1)


class ChurnResponse(ServedResponse):
    feature_service: str
    predictions: list[ChurnPrediction]


def serve_load(settings, uri: str):
    model = load_model(uri)
    return feast_predictor(settings, model, list(model.get_booster().feature_names), FEATURE_SERVICE)


def serve_infer(predictor, customer_ids: np.ndarray) -> np.ndarray:
    """The batchable core: online features and churn probability for stacked customer ids (NaN if unknown)."""
    return predictor.infer_ids(customer_ids, lambda x: predictor.model.predict_proba(x)[:, 1])


def serve_predict(predictor, request: ChurnRequest, infer) -> dict:
    probs = infer(np.asarray(request.customer_ids, dtype=object))
    predictor.check_known(request.customer_ids, probs)
    return {"feature_service": FEATURE_SERVICE,
            "predictions": [{"customer_id": c, "churn_probability": float(p)}
                            for c, p in zip(request.customer_ids, probs, strict=True)]}


SERVING = ServingSpec(
    request=ChurnRequest, response=ChurnResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.customer_ids[0], items_field="customer_ids", batch_infer=serve_infer,
    example=lambda s: {"customer_ids": batch_values(s, "orders", "customer_id")},
    unknown={"customer_ids": ["C_DOES_NOT_EXIST"]},
    summary="Churn probability of each customer over the model's horizon.",
)

SPEC = ModelSpec(
    name="churn",
    params=ChurnParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="auc",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="XGBoost churn classifier on RFM, activity and category-mix features.",
    serving=SERVING,
    data=FamilyData(("customers", "orders"), kind="a customer table (optionally with a `churned` label) plus "
                    "orders or a transaction log",
                    note="without `churned`, labels are derived: no order in the `horizon_days` after a cutoff"),
)
