"""Customer lifetime value: how much will a customer spend in the next ``horizon_days``?

Label at cutoff ``c``: the sum of order amounts in ``(c, c + horizon]``, for customers with at least one order by
``c``. Inputs: Feast features (FeatureService ``ltv_v1``) as of each cutoff, point-in-time correct, plus each
customer's purchase summary at the cutoff (repeat purchases, recency, age, mean repeat value) computed from the
orders. Split by time like churn: cutoffs fall on the weekly feature snapshots, the holdout cutoff is the last one
whose label window fits the data, and every training label window ends before it.

Model (:class:`pipelines.clv.model.LTVRegressor`): a BG/NBD + Gamma-Gamma prior fitted on the training rows, times
an XGBoost Tweedie correction learnt from the features. Baselines: BG/NBD + Gamma-Gamma fitted on all purchases up
to the holdout cutoff (the classic buy-till-you-die model), the spend of the previous ``horizon_days`` carried
forward, and XGBoost on the Feast features alone. Oracle: the generator's expected spend given each customer's
hidden purchase rate, churn hazard, mean spend and whether they are still alive at the cutoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.serving import CustomerIds, batch_values, feast_predictor
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedItem, ServedResponse, ServingSpec
from pipelines.utils import pinned_requirements

log = logging.getLogger(__name__)

FEATURE_SERVICE = "ltv_v1"
LABEL = "future_spend"
PRIMARY_METRIC = "mae"
MIN_TRAIN_ROWS = 30
"""Fewer training rows than this cannot fit the BG/NBD prior and the trees meaningfully."""


class LTVParams(ModelParams):
    """Hyper-parameters of the LTV model (override with ``--set key=value``)."""

    horizon_days: int = Field(180, ge=14, le=365, description="Label window after the cutoff, in days.")
    n_train_cutoffs: int = Field(4, ge=1, le=52)
    cutoff_spacing_days: int = Field(28, ge=7, description="Days between training cutoffs (multiple of 7).")
    min_history_days: int = Field(
        28, ge=0, description="Days of orders required before the first training cutoff.")
    btyd_penalizer: float = Field(0.0, ge=0, description="L2 penalty of the BG/NBD and Gamma-Gamma fits.")
    n_estimators: int = Field(150, ge=1, le=5000)
    max_depth: int = Field(3, ge=1, le=16)
    learning_rate: float = Field(0.03, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    tweedie_variance_power: float = Field(1.5, ge=1.0, lt=2.0)


@dataclass
class LTVData:
    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    """Model inputs: the Feast features, then :data:`pipelines.clv.model.SUMMARY_COLUMNS`."""
    train_cutoffs: list[pd.Timestamp]
    holdout_cutoff: pd.Timestamp
    horizon_days: int
    baselines: dict[str, np.ndarray]
    """Baseline predictions aligned with ``holdout``, keyed by baseline name."""
    btyd_holdout: pd.DataFrame
    """The BG/NBD + Gamma-Gamma baseline's summary and predictions for the holdout rows (for diagnostics)."""
    btyd_params: dict[str, float] = field(default_factory=dict)
    oracle: pd.Series | None = None
    """True expected spend of each holdout row (aligned with ``holdout``), or ``None``."""


# ------------------------------------------------------------------------------------------------ data set


def label_frame(orders: pd.DataFrame, customers: pd.DataFrame, cutoff: pd.Timestamp,
                horizon_days: int) -> pd.DataFrame:
    """Entity rows for one cutoff: customers with an order by ``cutoff``, labelled with their spend after it.

    Returns:
        ``customer_id`` (sorted), ``event_timestamp`` (the cutoff), :data:`LABEL` (amounts in
        ``(cutoff, cutoff + horizon]``) and ``future_purchases`` (days with an order in that window).
    """
    before = orders.loc[orders["order_ts"] <= cutoff, "customer_id"].astype(str).unique()
    ids = pd.Index(before).intersection(pd.Index(customers["customer_id"].astype(str))).sort_values()
    window_end = cutoff + pd.Timedelta(days=horizon_days)
    inside = orders[(orders["order_ts"] > cutoff) & (orders["order_ts"] <= window_end)]
    who = inside["customer_id"].astype(str)
    spend = inside.groupby(who)["amount"].sum()
    days = inside.assign(_day=inside["order_ts"].dt.floor("D")).groupby(who)["_day"].nunique()
    return pd.DataFrame({
        "customer_id": ids.astype(str),
        "event_timestamp": cutoff,
        LABEL: spend.reindex(ids, fill_value=0.0).to_numpy(dtype="float64"),
        "future_purchases": days.reindex(ids, fill_value=0).to_numpy(dtype="float64"),
    })


def cutoffs(snapshot_end: pd.Timestamp, params: LTVParams) -> tuple[list[pd.Timestamp], pd.Timestamp]:
    """Training cutoffs and the holdout cutoff, aligned to the weekly feature snapshots.

    The holdout's label window ends at the data's end (rounded to whole weeks); each training label window ends
    at or before the holdout cutoff, so no training label overlaps the holdout period.
    """
    week = pd.Timedelta(days=7)
    horizon_weeks = -(-params.horizon_days // 7)
    holdout = snapshot_end - horizon_weeks * week
    spacing = max(1, params.cutoff_spacing_days // 7) * week
    last_train = holdout - horizon_weeks * week
    train = [last_train - k * spacing for k in range(params.n_train_cutoffs)]
    return sorted(train), holdout


def spend_before(orders: pd.DataFrame, cutoff: pd.Timestamp, days: int, customer_ids) -> np.ndarray:
    """Amount each customer spent in ``(cutoff - days, cutoff]`` (the last-period baseline)."""
    inside = orders[(orders["order_ts"] > cutoff - pd.Timedelta(days=days)) & (orders["order_ts"] <= cutoff)]
    spend = inside.groupby(inside["customer_id"].astype(str))["amount"].sum()
    return spend.reindex(pd.Index(customer_ids).astype(str), fill_value=0.0).to_numpy(dtype="float64")


def prepare(ctx: DataContext, params: LTVParams) -> LTVData:
    """Labelled rows at every cutoff with Feast features and purchase summaries, baselines and oracle.

    Raises:
        ValueError: if the history is too short for the horizon and cutoffs, or too few customers bought.
    """
    from pipelines.clv.model import SUMMARY_COLUMNS, btyd_spend, summary_features
    from pipelines.data.io import table_path
    from pipelines.data.kinds import require, table_or_empty
    from pipelines.features import store
    from pipelines.features.build import snapshot_end

    require(ctx, "ltv")
    orders = ctx.table("orders")
    if table_path(ctx.batch_dir, "customers") is not None:
        customers = ctx.table("customers")
    else:  # a bare transaction log: the buyers are the customers
        customers = pd.DataFrame({"customer_id": orders["customer_id"].astype(str).unique()})
    end = snapshot_end(table_or_empty(ctx, "events"), orders)
    train_cuts, holdout_cut = cutoffs(end, params)
    earliest = orders["order_ts"].min().floor("D") + pd.Timedelta(days=params.min_history_days)
    if train_cuts[0] < earliest:
        span = (end - orders["order_ts"].min().floor("D")).days
        need = 2 * 7 * -(-params.horizon_days // 7) + (params.n_train_cutoffs - 1) * 7 * max(
            1, params.cutoff_spacing_days // 7) + params.min_history_days
        raise ValueError(
            f"not enough history for ltv: orders span {span} days but horizon_days={params.horizon_days}, "
            f"n_train_cutoffs={params.n_train_cutoffs}, cutoff_spacing_days={params.cutoff_spacing_days} and "
            f"min_history_days={params.min_history_days} need about {need}; lower them or bring more history"
        )
    parts = []
    for cut in [*train_cuts, holdout_cut]:
        rows = label_frame(orders, customers, cut, params.horizon_days)
        parts.append(pd.concat([rows, summary_features(orders, cut, rows["customer_id"])], axis=1))
    entities = pd.concat(parts, ignore_index=True)

    fs = store.get_store(ctx.settings)  # one store for both calls: building it is the slow part
    frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE, store=fs)
    feast = [c for c in store.feature_names(ctx.settings, FEATURE_SERVICE, store=fs) if c in frame.columns]
    features = feast + SUMMARY_COLUMNS
    frame[features] = frame[features].astype("float64")
    frame = frame.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    is_holdout = frame["event_timestamp"] == holdout_cut
    train, holdout = frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)
    repeat_buyers = int((train["btyd_frequency"] > 0).sum())
    if len(train) < MIN_TRAIN_ROWS or repeat_buyers < 2 or holdout.empty:
        raise ValueError(
            f"too little data for ltv: {len(train)} training rows ({repeat_buyers} repeat buyers) and "
            f"{len(holdout)} holdout rows; need at least {MIN_TRAIN_ROWS} rows, 2 repeat buyers and a holdout"
        )
    if not (holdout[LABEL] > 0).any():
        raise ValueError("nobody bought in the holdout window: cannot evaluate ltv")

    btyd, btyd_model = btyd_spend(orders, holdout_cut, holdout["customer_id"], params.horizon_days,
                                  params.btyd_penalizer)
    baselines = {
        "bgnbd_gamma_gamma": btyd["btyd_spend"].to_numpy(),
        "last_period_spend": spend_before(orders, holdout_cut, params.horizon_days, holdout["customer_id"]),
    }
    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.data.generator import expected_spend, load_truth

        truth, _, _ = load_truth(ctx.truth_dir)
        expected = expected_spend(truth, holdout_cut, params.horizon_days)
        oracle = holdout["customer_id"].map(expected).astype(float)
    log.info("ltv data: %d training rows at %d cutoffs, %d holdout rows at %s", len(train), len(train_cuts),
             len(holdout), holdout_cut.date())
    return LTVData(train, holdout, features, train_cuts, holdout_cut, params.horizon_days, baselines,
                   btyd.assign(customer_id=holdout["customer_id"].to_numpy()), btyd_model.params_, oracle)


# ------------------------------------------------------------------------------------------------ model


def fit(data: LTVData, params: LTVParams):
    from pipelines.clv.model import LTVRegressor
    from pipelines.utils import pick_device

    model = LTVRegressor(
        horizon_days=params.horizon_days, btyd_penalizer=params.btyd_penalizer, n_estimators=params.n_estimators,
        max_depth=params.max_depth, learning_rate=params.learning_rate, subsample=params.subsample,
        colsample_bytree=params.colsample_bytree, min_child_weight=params.min_child_weight,
        tweedie_variance_power=params.tweedie_variance_power, random_state=params.seed, n_jobs=1,
        device=pick_device(),
    )
    # The holdout only records a learning curve (no early stopping): it does not steer training.
    return model.fit(data.train[data.features], data.train[LABEL],
                     eval_set=[(data.train[data.features], data.train[LABEL]),
                               (data.holdout[data.features], data.holdout[LABEL])])


def predict(model, frame: pd.DataFrame) -> np.ndarray:
    """Expected spend over the model's horizon for rows of ``frame``, using the model's own input columns."""
    return model.predict(frame[list(model.feature_names_in_)])


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, Spearman, top-decile capture and calibration ratio of ``pred`` against the actual spend ``y``.

    ``top_decile_capture`` is the share of the actual spend bought by the 10 % of customers ranked highest by
    ``pred`` (ties broken by row order); ``calibration_ratio`` is predicted total / actual total.
    """
    from scipy.stats import spearmanr

    y, pred = np.asarray(y, dtype="float64"), np.asarray(pred, dtype="float64")
    top = np.argsort(-pred, kind="stable")[: int(np.ceil(0.1 * len(y)))]
    total = y.sum()
    rho = spearmanr(pred, y).statistic if np.ptp(pred) > 0 and np.ptp(y) > 0 else 0.0  # undefined if constant
    return {
        "mae": float(np.mean(np.abs(pred - y))),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "spearman": float(rho),
        "top_decile_capture": float(y[top].sum() / total) if total > 0 else 0.0,
        "calibration_ratio": float(pred.sum() / total) if total > 0 else 0.0,
    }


def score(model, data: LTVData) -> float:
    return regression_metrics(data.holdout[LABEL], predict(model, data.holdout))[PRIMARY_METRIC]


def _feast_only(data: LTVData, params: LTVParams) -> np.ndarray:
    """Ablation baseline: the same XGBoost Tweedie regressor on the Feast features alone (no BG/NBD prior)."""
    import xgboost as xgb

    from pipelines.clv.model import SUMMARY_COLUMNS

    cols = [c for c in data.features if c not in SUMMARY_COLUMNS]
    model = xgb.XGBRegressor(
        objective="reg:tweedie", tweedie_variance_power=params.tweedie_variance_power,
        n_estimators=params.n_estimators, max_depth=params.max_depth, learning_rate=params.learning_rate,
        subsample=params.subsample, colsample_bytree=params.colsample_bytree, min_child_weight=params.min_child_weight,
        random_state=params.seed, n_jobs=1, tree_method="hist",
    )
    model.fit(data.train[cols], data.train[LABEL])
    return model.predict(data.holdout[cols]).astype("float64")


def evaluate(model, data: LTVData, params: LTVParams) -> Evaluation:
    from pipelines.clv import plots

    y = data.holdout[LABEL].to_numpy(dtype="float64")
    pred = predict(model, data.holdout)
    baselines = dict(data.baselines) | {"xgboost_feast_only": _feast_only(data, params)}
    metrics = regression_metrics(y, pred) | {
        "prior_mae": regression_metrics(y, model.prior(data.holdout))["mae"],
        "holdout_rows": float(len(y)), "train_rows": float(len(data.train)),
        "holdout_mean_spend": float(y.mean()), "holdout_zero_share": float((y == 0).mean()),
    }
    for name, values in baselines.items():
        metrics |= {f"baseline_{name}_{k}": v for k, v in regression_metrics(y, values).items() if k != PRIMARY_METRIC}
    oracle = None
    if data.oracle is not None:
        oracle_metrics = regression_metrics(y, data.oracle.to_numpy())
        oracle = oracle_metrics[PRIMARY_METRIC]
        metrics |= {f"oracle_{k}": v for k, v in oracle_metrics.items() if k != PRIMARY_METRIC}

    curves = {"LTV model": pred, **baselines}
    if data.oracle is not None:
        curves["oracle"] = data.oracle.to_numpy()
    evals = model.booster_.evals_result()
    figures = {
        "gains.png": plots.gains(y, curves),
        "decile_calibration.png": plots.decile_calibration(y, {k: curves[k] for k in curves if k in (
            "LTV model", "bgnbd_gamma_gamma", "oracle")}),
        "predicted_vs_actual.png": plots.predicted_vs_actual(y, pred, data.baselines["bgnbd_gamma_gamma"]),
        "bgnbd_holdout_purchases.png": plots.bgnbd_holdout(data.btyd_holdout, data.holdout["future_purchases"]),
        "feature_importance.png": plots.importance(model.feature_importance()),
        "learning_curve.png": plots.learning_curve({"train": evals["validation_0"]["mae"],
                                                    "holdout": evals["validation_1"]["mae"]}),
    }
    extra = {
        "holdout_cutoff": str(data.holdout_cutoff.date()),
        "train_cutoffs": ",".join(str(c.date()) for c in data.train_cutoffs),
        "features": ",".join(data.features),
        "tree_features": ",".join(model.tree_features_),
    }
    extra |= {f"prior_{k}": round(v, 6) for k, v in model.btyd_.params_.items()}
    extra |= {f"baseline_{k}": round(v, 6) for k, v in data.btyd_params.items()}
    return Evaluation(
        metrics=metrics,
        baselines={name: regression_metrics(y, values)[PRIMARY_METRIC] for name, values in baselines.items()},
        oracle=oracle,
        figures=figures,
        extra_params=extra,
    )


def log_model(model, data: LTVData):
    import mlflow
    from mlflow.models import infer_signature

    from pipelines.clv.model import SKOPS_TRUSTED_TYPES

    example = data.holdout[list(model.feature_names_in_)].head(5)
    signature = infer_signature(example, predict(model, example))
    # skops, not pickle: loading only instantiates the listed types instead of running arbitrary code.
    return mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=example,
                                    serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
                                    skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=_pip_requirements())


def _pip_requirements() -> list[str]:
    """The model's classes live in ``pipelines.clv``, i.e. the ``shopflow`` distribution itself."""
    return pinned_requirements("mlflow", "scikit-learn", "xgboost", "scipy", "numpy", "pandas", "skops", "shopflow")


def load_model(uri: str):
    import mlflow

    return mlflow.sklearn.load_model(uri)


# ------------------------------------------------------------------------------------------------ serving


class LTVRequest(ApiModel):
    customer_ids: CustomerIds


class LTVPrediction(ServedItem):
    customer_id: str
    expected_spend: float = Field(ge=0, description="Expected spend over the model's horizon.")


class LTVResponse(ServedResponse):
    horizon_days: int
    as_of: str = Field(description="Date the purchase summaries are taken at (end of the served data).")
    predictions: list[LTVPrediction]


def serve_load(settings, uri: str):
    """The model plus every customer's purchase summary at the end of the current batch (its non-Feast inputs)."""
    from pipelines.clv.model import summary_features
    from pipelines.features.build import snapshot_end
    from pipelines.training import data_context

    model = load_model(uri)
    ctx = data_context(settings)
    orders = ctx.table("orders")
    events = ctx.table("events") if "events" in _tables(ctx) else orders.iloc[:0].rename(
        columns={"order_ts": "event_ts"})
    end = snapshot_end(events, orders)
    ids = pd.Index(orders["customer_id"].astype(str).unique())
    summaries = summary_features(orders, end, ids).set_index(ids)
    predictor = feast_predictor(settings, model, list(model.feature_names_in_), FEATURE_SERVICE, extra=summaries)
    predictor.horizon_days = int(getattr(model, "horizon_days", 0) or 0)
    predictor.as_of = str(end.date())
    return predictor


def _tables(ctx: DataContext) -> set[str]:
    return {p.stem for p in ctx.batch_dir.iterdir()}


def serve_infer(predictor, customer_ids: np.ndarray) -> np.ndarray:
    """The batchable core: online features and expected spend for stacked customer ids (NaN if unknown)."""
    return predictor.infer_ids(customer_ids, lambda x: np.clip(
        predictor.model.predict(pd.DataFrame(x, columns=predictor.features)), 0, None))


def serve_predict(predictor, request: LTVRequest, infer) -> dict:
    spend = infer(np.asarray(request.customer_ids, dtype=object))
    predictor.check_known(request.customer_ids, spend)
    return {"horizon_days": predictor.horizon_days, "as_of": predictor.as_of,
            "predictions": [{"customer_id": c, "expected_spend": float(v)}
                            for c, v in zip(request.customer_ids, spend, strict=True)]}


SERVING = ServingSpec(
    request=LTVRequest, response=LTVResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.customer_ids[0], items_field="customer_ids", batch_infer=serve_infer,
    example=lambda s: {"customer_ids": batch_values(s, "orders", "customer_id")},
    unknown={"customer_ids": ["C_DOES_NOT_EXIST"]},
    summary="Expected spend of each customer over the model's horizon.",
)

SPEC = ModelSpec(
    name="ltv",
    params=LTVParams,
    feature_service=FEATURE_SERVICE,
    primary_metric=PRIMARY_METRIC,
    higher_is_better=False,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Expected spend over the next horizon_days: XGBoost Tweedie correction of a BG/NBD + Gamma-Gamma "
                "prior, on RFM, activity and category-mix features.",
    serving=SERVING,
    data=FamilyData(("orders",), kind="a transaction log (customer, date, amount) or order lines",
                    note="customers are taken from the orders when there is no customers table"),
)
