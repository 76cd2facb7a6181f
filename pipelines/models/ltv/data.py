"""The LTV data set: labelled customers at weekly cutoffs with Feast features, purchase summaries and the
buy-till-you-die prior as of each cutoff, split by time into train, validation and holdout, plus every customer at
the end of the data (the population the served model predicts from)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipelines.data.schema import FamilyData
from pipelines.models.ltv.params import LTVParams
from pipelines.spec import DataContext

log = logging.getLogger(__name__)

FEATURE_SERVICE = "ltv_v1"
LABEL = "future_spend"
MIN_TRAIN_ROWS = 30
"""Fewer training rows than this cannot fit the BG/NBD prior and the trees meaningfully."""
SPLITS = 4
"""Windows that must fit after ``min_history_days``: one of history before the training cutoffs (so enough customers
have bought by then), then the training, validation and holdout label windows."""

NEEDS = FamilyData(("orders",), kind="a transaction log (customer, date, amount) or order lines",
                   note="customers are taken from the orders when there is no customers table")
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""


@dataclass(frozen=True)
class Windows:
    """Where the cutoffs fall. Every label window is ``label_days`` long; the training windows end at or before the
    validation cutoff, the validation window at or before the holdout cutoff, the holdout window at the end."""

    first_day: pd.Timestamp
    end: pd.Timestamp
    span_days: int
    horizon_days: int
    """Horizon of the served predictions (at most the span)."""
    label_days: int
    """Length of the labelled windows: the horizon, or less when three windows of it do not fit the data."""
    train: list[pd.Timestamp]
    validation: pd.Timestamp
    holdout: pd.Timestamp


@dataclass
class LTVData:
    train: pd.DataFrame
    """Labelled rows whose windows end by the validation cutoff (candidates are fitted on them)."""
    validation: pd.DataFrame
    """Labelled rows at the validation cutoff (candidates are chosen on them)."""
    holdout: pd.DataFrame
    population: pd.DataFrame
    """Every customer with a purchase, at the end of the data (no label): what the served model predicts from."""
    features: list[str]
    """Model inputs: the Feast features, then :data:`~pipelines.models.ltv.regressor.SUMMARY_COLUMNS`."""
    windows: Windows
    btyd_params: dict[str, float]
    """The BG/NBD + Gamma-Gamma parameters fitted as of the holdout cutoff (the baseline's)."""
    oracle: pd.Series | None = None
    """True expected spend of each holdout row (aligned with ``holdout``), or ``None``."""

    @property
    def refit(self) -> pd.DataFrame:
        """The whole training part: every labelled row whose window ends by the holdout cutoff."""
        return pd.concat([self.train, self.validation], ignore_index=True)

    @property
    def label_days(self) -> int:
        return self.windows.label_days


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


ATTRIBUTE_PREFIX = "attr_"


def attribute_features(ctx: DataContext) -> pd.DataFrame:
    """Customer attributes (:mod:`pipelines.data.attributes`) as float model inputs, indexed by ``customer_id``.

    Numeric attributes are ``attr_<name>`` as they are (NaN when missing: the trees route it); a categorical one
    becomes one 0/1 column ``attr_<name>=<level>`` per level held by at least ``MIN_LEVEL_SHARE`` of the customers
    (the ``MAX_LEVELS`` most frequent; rarer, missing or unseen levels: all zeros). A deterministic function of the
    customers table, so serving rebuilds the same columns from the table logged with the model version. Empty (no
    columns) without a customers table or attributes.
    """
    from pipelines.data.attributes import MAX_LEVELS, MIN_LEVEL_SHARE, customer_attributes, split_kinds
    from pipelines.data.io import table_path

    if table_path(ctx.batch_dir, "customers") is None:
        return pd.DataFrame(index=pd.Index([], name="customer_id"))
    attrs = customer_attributes(ctx)
    numeric, categorical = split_kinds(attrs)
    out = {f"{ATTRIBUTE_PREFIX}{c}": attrs[c].astype("float64") for c in numeric}
    for c in categorical:
        counts = attrs[c].dropna().astype(str).value_counts()
        counts = counts[counts >= MIN_LEVEL_SHARE * len(attrs)]
        levels = sorted(counts.index, key=lambda v: (-counts[v], v))[:MAX_LEVELS]
        for level in levels:
            name = re.sub(r"[\[\]<,]", "_", f"{ATTRIBUTE_PREFIX}{c}={level}")  # names XGBoost accepts
            out[name] = (attrs[c].astype(object) == level).astype("float64")
    return pd.DataFrame(out, index=attrs.index)


def windows(first_day: pd.Timestamp, end: pd.Timestamp, params: LTVParams) -> Windows:
    """Training, validation and holdout cutoffs, aligned to the weekly feature snapshots before ``end``.

    The served horizon may reach the data's span. The labelled windows are as long as the horizon when three of
    them and one window of history fit after ``min_history_days``, else as long as fits (whole weeks): the model then learns on shorter
    windows and the prior carries it to the horizon.

    Raises:
        ValueError: one line, when the horizon exceeds the span or the history is too short.
    """
    week = pd.Timedelta(days=7)
    span = int((end - first_day) / pd.Timedelta(days=1))
    horizon = params.horizon_days
    if horizon > span:
        raise ValueError(f"horizon_days={horizon} is longer than the data: orders span {span} days "
                         f"({first_day.date()} to {end.date()}); choose horizon_days <= {span}")
    fit_weeks = (span - params.min_history_days) // (7 * SPLITS)
    label_weeks = min(-(-horizon // 7), fit_weeks)
    spacing = max(1, params.cutoff_spacing_days // 7) * week
    holdout = end - label_weeks * week
    validation = holdout - label_weeks * week
    earliest = first_day + pd.Timedelta(days=params.min_history_days)
    train = [validation - label_weeks * week - k * spacing for k in range(params.n_train_cutoffs)]
    train = sorted(c for c in train if c >= earliest)
    if label_weeks < 1 or not train:
        raise ValueError(
            f"not enough history for ltv: orders span {span} days; a week of history and three label windows of "
            f"a week (training, validation, holdout) after min_history_days={params.min_history_days} need "
            f"{7 * SPLITS + params.min_history_days}; lower min_history_days or bring more history")
    label_days = horizon if label_weeks * 7 >= horizon else label_weeks * 7
    return Windows(first_day, end, span, horizon, label_days, train, validation, holdout)


def _rows_at(orders: pd.DataFrame, customers: pd.DataFrame, cutoff: pd.Timestamp, days: int,
             penalizer: float) -> pd.DataFrame:
    """Labelled rows at ``cutoff`` with purchase summaries and the prior fitted on everyone's history up to it."""
    from pipelines.models.ltv.regressor import PRIOR_COLUMNS, BTYDFeatures, summary_features

    rows = label_frame(orders, customers, cutoff, days)
    summary = summary_features(orders, cutoff, rows["customer_id"], days)
    try:
        prior = BTYDFeatures(days, penalizer).fit(summary).transform(summary)[PRIOR_COLUMNS]
    except ValueError as exc:
        raise ValueError(f"too little data for ltv at the cutoff {cutoff.date()}: {exc}") from exc
    return pd.concat([rows, summary, prior], axis=1)


def prepare(ctx: DataContext, params: LTVParams) -> LTVData:
    """Labelled rows at every cutoff, the population at the end, and (generated data only) the oracle.

    Raises:
        ValueError: if the horizon exceeds the data, the history is too short, or too few customers bought.
    """
    from pipelines.data.io import table_path
    from pipelines.data.kinds import require, table_or_empty
    from pipelines.features import store
    from pipelines.features.build import snapshot_end
    from pipelines.models.ltv.regressor import SUMMARY_COLUMNS, BTYDFeatures, summary_features

    require(ctx, "ltv")
    orders = ctx.table("orders")
    if table_path(ctx.batch_dir, "customers") is not None:
        customers = ctx.table("customers")
    else:  # a bare transaction log: the buyers are the customers
        customers = pd.DataFrame({"customer_id": orders["customer_id"].astype(str).unique()})
    end = snapshot_end(table_or_empty(ctx, "events"), orders)
    win = windows(orders["order_ts"].min().floor("D"), end, params)
    parts = [_rows_at(orders, customers, cut, win.label_days, params.btyd_penalizer)
             for cut in [*win.train, win.validation, win.holdout]]
    ids = label_frame(orders, customers, end, 0)["customer_id"]
    population = pd.concat([pd.DataFrame({"customer_id": ids, "event_timestamp": end, LABEL: np.nan,
                                          "future_purchases": np.nan}),
                            summary_features(orders, end, ids, win.horizon_days)], axis=1)
    entities = pd.concat([*parts, population], ignore_index=True)

    fs = store.get_store(ctx.settings)  # one store for both calls: building it is the slow part
    frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE, store=fs)
    feast = [c for c in store.feature_names(ctx.settings, FEATURE_SERVICE, store=fs) if c in frame.columns]
    attrs = attribute_features(ctx) if params.use_attributes else pd.DataFrame()
    attrs = attrs[[c for c in attrs.columns if c not in frame.columns]]
    frame = frame.join(attrs, on="customer_id") if not attrs.empty else frame
    features = feast + list(attrs.columns) + SUMMARY_COLUMNS
    frame[features] = frame[features].astype("float64")
    frame = frame.sort_values(["event_timestamp", "customer_id"], kind="stable").reset_index(drop=True)
    at = frame["event_timestamp"]
    train = frame[at.isin(win.train)].reset_index(drop=True)
    validation = frame[at == win.validation].reset_index(drop=True)
    holdout = frame[at == win.holdout].reset_index(drop=True)
    population = frame[at == end].reset_index(drop=True)
    repeat_buyers = int((train["btyd_frequency"] > 0).sum())
    if len(train) < MIN_TRAIN_ROWS or repeat_buyers < 2 or validation.empty or holdout.empty:
        raise ValueError(
            f"too little data for ltv: {len(train)} training rows ({repeat_buyers} repeat buyers), "
            f"{len(validation)} validation and {len(holdout)} holdout rows; need at least {MIN_TRAIN_ROWS} "
            f"training rows, 2 repeat buyers, a validation and a holdout")
    if not (holdout[LABEL] > 0).any():
        raise ValueError("nobody bought in the holdout window: cannot evaluate ltv")

    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.models.ltv.oracle import true_expected_spend

        oracle = true_expected_spend(ctx.truth_dir, holdout, win.holdout, win.label_days)
    btyd_params = BTYDFeatures(win.label_days, params.btyd_penalizer).fit(holdout).params_
    log.info("ltv data: %d training rows at %d cutoffs, %d validation rows at %s, %d holdout rows at %s, "
             "%d-day label windows (horizon %d days)", len(train), len(win.train), len(validation),
             win.validation.date(), len(holdout), win.holdout.date(), win.label_days, win.horizon_days)
    return LTVData(train, validation, holdout, population, features, win, btyd_params, oracle)
