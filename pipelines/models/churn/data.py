"""The churn data set: labelled customers with their Feast features as of each cutoff and their attributes, split
into train (with a validation part) and holdout.

Labels are derived from the orders (no order in the ``horizon_days`` after a cutoff) at several weekly cutoffs,
or taken from a ``churned`` column of the customers table when the batch provides one. Every customer attribute
(:mod:`pipelines.data.attributes`) is a feature too; a batch with labels and attributes but no orders or events
trains on the attributes alone. Every labelled customer is used or counted as left out (``ChurnData.counts``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipelines.data.schema import FamilyData
from pipelines.models.churn.params import ChurnParams
from pipelines.spec import DataContext

log = logging.getLogger(__name__)

FEATURE_SERVICE = "churn_v1"
RESERVED = ("customer_id", "event_timestamp", "churned")


def _needs(tables) -> list[str]:
    """Orders are needed unless the customers carry a ``churned`` label (attributes then suffice)."""
    customers = tables.get("customers")
    if customers is not None and "churned" in customers and customers["churned"].notna().any():
        return []
    if "orders" in tables and len(tables["orders"]) > 0:
        return []
    return ["missing table orders (or a `churned` label in customers)"]


NEEDS = FamilyData(("customers",),
                   kind="a customer table (optionally with a `churned` label and attribute columns) plus orders or a "
                        "transaction log; with a `churned` label, customers alone will do",
                   note="without `churned`, labels are derived: no order in the `horizon_days` after a cutoff",
                   check=_needs)
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""


def _require(ctx: DataContext) -> None:
    """:func:`pipelines.data.kinds.require` with the orders too (the check needs them; ``require`` only reads the
    tables a family always needs)."""
    from pipelines.data.io import present_tables
    from pipelines.data.kinds import MissingDataError, family_support

    present = set(present_tables(ctx.batch_dir))
    support = family_support({n: ctx.table(n) for n in ("customers", "orders") if n in present})["churn"]
    if not support.trainable:
        raise MissingDataError(f"churn cannot train on batch {ctx.batch_id}: {support.reason}. It needs "
                               f"{NEEDS.kind} (see docs/data-schema.md).")


@dataclass
class ChurnData:
    train: pd.DataFrame
    holdout: pd.DataFrame
    features: list[str]
    """Feast features (``churn_v1``) used; empty when the batch has no orders or events."""
    holdout_cutoff: pd.Timestamp | None
    oracle: pd.Series | None
    """True churn probability of each holdout row (aligned with ``holdout``), or ``None``."""
    numeric: list[str] = field(default_factory=list)
    """Numeric attribute columns (in ``train``/``holdout`` and ``attributes``)."""
    categorical: list[str] = field(default_factory=list)
    """Categorical attribute columns."""
    attributes: pd.DataFrame | None = None
    """Attributes of every customer of the batch, indexed by customer id: kept with the model for serving."""
    split: np.ndarray | None = None
    """Role of each ``train`` row in candidate selection: :data:`FIT`, :data:`VALIDATE` (the validation part that
    picks the candidate, never the holdout) or :data:`REFIT_ONLY` (only in the winner's refit on all of ``train``)."""
    counts: dict[str, float] = field(default_factory=dict)
    """Labelled customers used, left out and without behaviour history (reported with the metrics)."""

    @property
    def columns(self) -> list[str]:
        """The model's input columns: Feast features, then numeric and categorical attributes."""
        return [*self.features, *self.numeric, *self.categorical]


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


def provided_labels(customers: pd.DataFrame, cutoff: pd.Timestamp | None) -> pd.DataFrame:
    """Entity rows from a ``churned`` column: every labelled customer, features read at ``cutoff``.

    The label is known at the data's end; features are read at ``cutoff`` (``horizon_days`` earlier), so the
    behaviour that made a customer churn (the missing orders) is not in the inputs. A customer who signed up after
    the cutoff has no behaviour history there: kept (attributes still describe them) and counted.
    """
    labelled = customers[customers["churned"].notna()]
    return pd.DataFrame({
        "customer_id": labelled["customer_id"].astype(str).to_numpy(),
        "event_timestamp": cutoff if cutoff is not None else pd.NaT,
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


def _attributes(ctx: DataContext, params: ChurnParams, feast: bool) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Every customer's attributes (names clear of the Feast features and entity columns), numeric and categorical
    column names."""
    from pipelines.data.attributes import customer_attributes, split_kinds

    if not params.use_attributes:
        return pd.DataFrame(index=pd.Index([], name="customer_id")), [], []
    attrs = customer_attributes(ctx)
    taken = set(RESERVED) | set(_feast_names(ctx) if feast else ())
    attrs = attrs.rename(columns={c: f"attr_{c}" for c in attrs.columns if c in taken})
    numeric, categorical = split_kinds(attrs)
    return attrs, numeric, categorical


def _feast_names(ctx: DataContext) -> list[str]:
    from pipelines.features import store

    try:
        return list(store.feature_names(ctx.settings, FEATURE_SERVICE))
    except Exception:  # noqa: BLE001 - no feature repo applied (attributes-only batch): no name to avoid
        return []


def _with_attributes(frame: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    joined = attrs.reindex(frame["customer_id"].astype(str).to_numpy())
    joined.index = frame.index
    return pd.concat([frame, joined], axis=1)


FIT, VALIDATE, REFIT_ONLY = 0, 1, 2
"""Roles of training rows in candidate selection (``ChurnData.split``)."""


def _random_split(labels: pd.Series, fraction: float, seed: int) -> np.ndarray:
    return np.where(_stratified_holdout(labels, fraction, seed), VALIDATE, FIT)


def _time_split(train: pd.DataFrame, horizon_days: int, fraction: float, seed: int) -> np.ndarray:
    """Roles of the time split's training rows: the last training cutoff validates, cutoffs whose label windows
    end by then fit, the ones in between (labels overlapping the validation period) only join the final refit.
    With a single training cutoff, a stratified share of its customers validates."""
    cuts = sorted(train["event_timestamp"].unique())
    last = cuts[-1]
    earlier = [c for c in cuts if c + pd.Timedelta(days=horizon_days) <= last] or cuts[:-1]
    stamps = train["event_timestamp"]
    if not earlier or train.loc[stamps == last, "churned"].nunique() < 2 \
            or train.loc[stamps.isin(earlier), "churned"].nunique() < 2:
        return _random_split(train["churned"], fraction, seed + 1)
    return np.where(stamps == last, VALIDATE, np.where(stamps.isin(earlier), FIT, REFIT_ONLY))


def prepare(ctx: DataContext, params: ChurnParams) -> ChurnData:
    """Labelled customer rows with their Feast features as of each cutoff and their attributes, split into train
    (with a validation part) and holdout.

    Labels come from the customers' ``churned`` column when the batch provides one (features at ``horizon_days``
    before the data's end, a stratified random holdout of customers); otherwise they are derived from the orders at
    several cutoffs (time split, see the module doc).

    Raises:
        pipelines.data.kinds.MissingDataError: if the batch has no customers, or neither orders nor labels.
        ValueError: if the history is too short or the labels have a single class.
    """
    from pipelines.data.kinds import table_or_empty
    from pipelines.features import store
    from pipelines.features.build import snapshot_end

    _require(ctx)
    customers = ctx.table("customers")
    orders, events = table_or_empty(ctx, "orders"), table_or_empty(ctx, "events")
    attrs, numeric, categorical = _attributes(ctx, params, feast=len(orders) > 0 or len(events) > 0)
    if customers["churned"].notna().any():
        return _prepare_provided(ctx, params, customers, orders, events, attrs, numeric, categorical)
    end = snapshot_end(events, orders)
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
    frame = _with_attributes(frame, attrs)
    frame = frame.sort_values(["event_timestamp", "customer_id"]).reset_index(drop=True)
    is_holdout = frame["event_timestamp"] == holdout_cut
    train, holdout = frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)
    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.models.churn.oracle import true_churn_probability

        oracle = true_churn_probability(ctx.truth_dir, holdout, holdout_cut, params.horizon_days)
    if train["churned"].nunique() < 2 or holdout["churned"].nunique() < 2:
        raise ValueError("churn labels have a single class in train or holdout; need more customers or history")
    counts = {
        "labelled_customers": float(holdout["customer_id"].nunique()),
        "labelled_left_out": 0.0,
        "labelled_without_history": float(holdout[features].isna().all(axis=1).sum()),
        "customers_without_orders": float(len(customers) - holdout["customer_id"].nunique()),
    }
    split = _time_split(train, params.horizon_days, params.validation_fraction, params.seed)
    return ChurnData(train, holdout, features, holdout_cut, oracle, numeric, categorical, attrs, split, counts)


def _prepare_provided(ctx: DataContext, params: ChurnParams, customers: pd.DataFrame, orders: pd.DataFrame,
                      events: pd.DataFrame, attrs: pd.DataFrame, numeric: list[str],
                      categorical: list[str]) -> ChurnData:
    """The data set from a provided ``churned`` label (no oracle: the label is the only truth there is).

    With orders or events, the Feast features are read ``horizon_days`` before the data's end; without, the
    attributes are the only inputs.
    """
    from pipelines.features import store
    from pipelines.features.build import snapshot_end

    has_activity = len(orders) > 0 or len(events) > 0
    cutoff = None
    if has_activity:
        cutoff = snapshot_end(events, orders) - -(-params.horizon_days // 7) * pd.Timedelta(days=7)  # weekly grid
    entities = provided_labels(customers, cutoff)
    if has_activity:
        frame = store.training_frame(ctx.settings, entities, FEATURE_SERVICE)
        features = [c for c in store.feature_names(ctx.settings, FEATURE_SERVICE) if c in frame.columns]
        frame[features] = frame[features].astype("float64")
    else:
        frame, features = entities, []
    if not features and not (numeric or categorical):
        raise ValueError("churn has no input: the batch has no orders or events and the customers table no attribute "
                         "column; bring orders (or transactions) or attribute columns")
    frame = _with_attributes(frame, attrs)
    frame = frame.sort_values("customer_id").reset_index(drop=True)
    if frame["churned"].nunique() < 2 or frame["churned"].value_counts().min() < 4:
        raise ValueError("churn labels need at least 4 customers of each class (churned 0 and 1)")
    is_holdout = _stratified_holdout(frame["churned"], params.holdout_fraction, params.seed)
    train, holdout = frame[~is_holdout].reset_index(drop=True), frame[is_holdout].reset_index(drop=True)
    n_labelled = int(customers["churned"].notna().sum())
    counts = {
        "labelled_customers": float(n_labelled),
        "labelled_left_out": float(n_labelled - len(frame)),
        "labelled_without_history": float(frame[features].isna().all(axis=1).sum()) if features else float(len(frame)),
        "unlabelled_customers": float(len(customers) - n_labelled),
    }
    if counts["labelled_without_history"]:
        log.warning("churn: %d of %d labelled customers have no purchase history at the feature cutoff %s; they are "
                    "scored on their attributes alone", counts["labelled_without_history"], n_labelled,
                    "(no orders or events in the batch)" if cutoff is None else cutoff.date())
    split = _random_split(train["churned"], params.validation_fraction, params.seed + 1)
    return ChurnData(train, holdout, features, cutoff, None, numeric, categorical, attrs, split, counts)
