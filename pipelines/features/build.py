"""Point-in-time feature snapshots computed from a raw batch and written as Parquet for Feast's file offline store.

Every snapshot row holds the values a model could have known at ``event_timestamp``: each feature uses only raw
rows with a time strictly before the snapshot time, and a customer appears only once signed up. Snapshots are taken
every 7 days anchored at the batch's end (customers) and daily (products), so a label at any time ``T`` joins the
newest snapshot at or before ``T`` without leaking anything from ``[snapshot, T]`` or later.

Every raw table is optional (a batch brings the data kinds it has): absent tables count as empty, customers are
taken from the activity (signed up at their first order, event or rating) when there is no customers table, and
the snapshot grid is anchored on the events and orders, else the ratings, else the sales. A batch without any
time (e.g. only labelled images) gets empty feature tables; families needing those features cannot train on it.

Windows are half-open: ``[t - w, t)``. They are computed without per-entity Python loops: the raw rows are turned
into per-entity cumulative sums once, and ``merge_asof`` reads the cumulative value strictly before ``t`` and before
``t - w``; their difference is the window total.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data.io import empty_table, present_tables, read_table

CUSTOMER_SNAPSHOT_EVERY = pd.Timedelta(days=7)
PRODUCT_SNAPSHOT_EVERY = pd.Timedelta(days=1)
DAY = pd.Timedelta(days=1)

FEATURE_TABLES = ("customer_rfm", "customer_activity", "customer_category_mix", "product_sales")
"""One Parquet file per Feast feature view, with the same name."""


def feature_file(table: str) -> str:
    """File name of one feature table; Feast's sources use it as their (relative) path, see ``feature_repo/sources.py``."""
    return f"{table}.parquet"


def feature_path(features_dir: Path, table: str) -> Path:
    """Location of one feature table in a folder of feature tables (a snapshot)."""
    return Path(features_dir) / feature_file(table)


def build_feature_tables(batch_dir: Path, settings, out_dir: Path | None = None) -> dict[str, Path]:
    """Compute every feature table from the raw batch in ``batch_dir`` and write it under ``out_dir``.

    All tables are computed before anything is written, and each file is replaced atomically (temp file in the same
    folder + ``os.replace``), so a failing run leaves the previous files untouched. The data pipeline writes into a
    snapshot folder built aside (:func:`pipelines.features.snapshot.build_snapshot`).

    Args:
        batch_dir: Folder of a raw batch (see ``pipelines.data.schema``).
        settings: ``pipelines.settings.Settings``; only ``features_dir`` is used, as the default ``out_dir``
            (features built by hand there are read while no snapshot was ever made current).
        out_dir: Folder to write the tables into.

    Returns:
        ``{table name: written Parquet path}`` for every name in :data:`FEATURE_TABLES`.

    Raises:
        pipelines.data.io.BatchFormatError: if a raw table present in the batch is malformed.
    """
    tables = {name: read_table(Path(batch_dir), name) for name in present_tables(Path(batch_dir))}
    frames = compute_feature_tables(tables)
    return write_atomically(frames, settings.features_dir if out_dir is None else out_dir)


def compute_feature_tables(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The feature tables, in memory, from raw tables as returned by ``pipelines.data.io.read_batch``.

    Customer snapshots fall every 7 days back from :func:`snapshot_end`, product snapshots every day; both stop at
    the first time with a full day of activity before it. Absent tables count as empty (see the module doc).
    """
    tables = _normalised(_completed(tables))
    span = _span(tables)
    timeless = span is None
    # Without any time the frames are computed on a one-day dummy grid and emptied: same columns and dtypes.
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    first_day, end = span if span is not None else (epoch, epoch + DAY)
    # "Created" when the batch closed: deterministic, so the same batch always gives byte-identical files.
    created = end
    customer_times = _snapshot_times(first_day, end, CUSTOMER_SNAPSHOT_EVERY)
    product_times = _snapshot_times(first_day, end, PRODUCT_SNAPSHOT_EVERY)

    grid = _customer_grid(tables["customers"], customer_times)
    frames = {
        "customer_rfm": _customer_rfm(grid, tables["orders"]),
        "customer_activity": _customer_activity(grid, tables["events"]),
        "customer_category_mix": _customer_category_mix(grid, tables["orders"], tables["products"]),
        "product_sales": _product_sales(tables["products"], tables["daily_sales"], tables["events"], product_times),
    }
    for name, frame in frames.items():
        frame["created_timestamp"] = created
        if timeless:
            frames[name] = frame.iloc[:0].reset_index(drop=True)
    return frames


def _completed(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every raw table the features read: absent ones empty, customers derived from the activity if absent."""
    out = {name: tables[name] if name in tables else empty_table(name)
           for name in ("customers", "products", "events", "orders", "daily_sales", "ratings")}
    if "customers" not in tables:
        out["customers"] = _customers_from_activity(out)
    if "products" not in tables and "daily_sales" in tables:
        ids = np.sort(tables["daily_sales"]["product_id"].astype(str).unique())
        out["products"] = empty_table("products").reindex(range(len(ids))).assign(product_id=ids)
    return out


def _customers_from_activity(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Customers seen in orders, events or ratings, signed up at their first activity (no customers table)."""
    seen = pd.concat([
        pd.DataFrame({"customer_id": tables[t]["customer_id"].astype(str),
                      "ts": pd.to_datetime(tables[t][c], utc=True)})
        for t, c in (("orders", "order_ts"), ("events", "event_ts"), ("ratings", "ts"))
    ], ignore_index=True).dropna()
    first = seen.groupby("customer_id", sort=True)["ts"].min()
    out = empty_table("customers").reindex(range(len(first)))
    return out.assign(customer_id=first.index.to_numpy(), signup_ts=first.to_numpy())


def _normalised(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Copies with every time column as ``datetime64[ns, UTC]``: ``merge_asof`` refuses keys of mixed resolution."""
    times = {"customers": "signup_ts", "events": "event_ts", "orders": "order_ts", "daily_sales": "date",
             "ratings": "ts"}
    out = dict(tables)
    for table, col in times.items():
        stamps = pd.to_datetime(tables[table][col], utc=True).astype("datetime64[ns, UTC]")
        out[table] = tables[table].assign(**{col: stamps})
    return out


def snapshot_end(events: pd.DataFrame, orders: pd.DataFrame, ratings: pd.DataFrame | None = None) -> pd.Timestamp:
    """Anchor of every snapshot grid: midnight UTC after the last day with an event or an order (with neither,
    the last rating).

    Raises:
        ValueError: if there are no events, no orders and no ratings.
    """
    span = _activity_span(events, orders, ratings)
    if span is None:
        raise ValueError("batch has no events, orders or ratings: nothing to anchor feature snapshots on")
    return span[1]


def _stamps(*columns: pd.Series) -> pd.Series:
    return pd.concat([pd.to_datetime(c, utc=True) for c in columns], ignore_index=True).dropna()


def _activity_span(events: pd.DataFrame, orders: pd.DataFrame,
                   ratings: pd.DataFrame | None = None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``(first day, end)`` of customer activity; ``end`` is exclusive (midnight after the last day)."""
    stamps = _stamps(events["event_ts"], orders["order_ts"])
    if stamps.empty and ratings is not None:
        stamps = _stamps(ratings["ts"])
    if stamps.empty:
        return None
    return stamps.min().floor("D"), stamps.max().floor("D") + DAY


def _span(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """Snapshot span of a batch: its customer activity, else its sales dates, else ``None``."""
    span = _activity_span(tables["events"], tables["orders"], tables["ratings"])
    if span is None:
        dates = _stamps(tables["daily_sales"]["date"])
        if not dates.empty:
            span = dates.min().floor("D"), dates.max().floor("D") + DAY
    return span


def _snapshot_times(first_day: pd.Timestamp, end: pd.Timestamp, every: pd.Timedelta) -> pd.DatetimeIndex:
    """``end, end - every, ...`` down to the first time with at least one day of data before it (ascending)."""
    n = int((end - first_day - DAY) / every) + 1
    return pd.DatetimeIndex([end - k * every for k in range(max(n, 1))][::-1])


def _customer_grid(customers: pd.DataFrame, times: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per (customer, snapshot time) for customers who had signed up strictly before that time."""
    signup = customers["signup_ts"]
    signed_up = signup.to_numpy("datetime64[ns]")[:, None] < times.to_numpy("datetime64[ns]")[None, :]
    cust_idx, time_idx = np.nonzero(signed_up)
    return pd.DataFrame(
        {
            "customer_id": customers["customer_id"].astype(str).to_numpy()[cust_idx],
            "event_timestamp": times[time_idx],
            "signup_ts": signup.iloc[cust_idx].reset_index(drop=True),
        }
    )


def _sums_before(
    grid: pd.DataFrame, at: pd.Series, rows: pd.DataFrame, keys: Sequence[str], time: str, values: Sequence[str]
) -> pd.DataFrame:
    """For each grid row, the sum of ``values`` over the rows of the same ``keys`` with ``time`` strictly before ``at``.

    ``rows`` must already hold per-key running totals (see :func:`_running_totals`), so this is one ``merge_asof``.
    """
    left = grid[list(keys)].assign(_at=at.array, _row=np.arange(len(grid))).sort_values("_at", kind="stable")
    merged = pd.merge_asof(
        left, rows, left_on="_at", right_on=time, by=list(keys), direction="backward", allow_exact_matches=False
    )
    merged = merged.sort_values("_row")
    return merged[list(values)].fillna(0).reset_index(drop=True)


def _running_totals(rows: pd.DataFrame, keys: Sequence[str], time: str, values: Sequence[str]) -> pd.DataFrame:
    """Per-key cumulative sums of ``values`` in time order (sorted by ``time``, as ``merge_asof`` needs)."""
    rows = rows.sort_values(time, kind="stable")
    totals = rows.groupby(list(keys), sort=False, observed=True)[list(values)].cumsum()
    return pd.concat([rows[[*keys, time]], totals], axis=1)


def _window_sums(
    grid: pd.DataFrame,
    rows: pd.DataFrame,
    keys: Sequence[str],
    time: str,
    values: Sequence[str],
    windows: dict[str, pd.Timedelta | None],
) -> dict[str, pd.DataFrame]:
    """``{window name: sums of values over [t - w, t)}`` per grid row; ``None`` means all history before ``t``."""
    totals = _running_totals(rows, keys, time, values)
    t = grid["event_timestamp"]
    upto_t = _sums_before(grid, t, totals, keys, time, values)
    out = {}
    for name, width in windows.items():
        out[name] = upto_t if width is None else upto_t - _sums_before(grid, t - width, totals, keys, time, values)
    return out


def _last_before(grid: pd.DataFrame, rows: pd.DataFrame, key: str, time: str) -> pd.Series:
    """Per grid row, the latest ``time`` of the same ``key`` strictly before the snapshot (NaT if none)."""
    right = rows[[key, time]].dropna().sort_values(time, kind="stable").assign(_last=lambda d: d[time])
    left = grid[[key, "event_timestamp"]].assign(_row=np.arange(len(grid)))
    left = left.sort_values("event_timestamp", kind="stable")
    merged = pd.merge_asof(
        left, right, left_on="event_timestamp", right_on=time, by=key, direction="backward", allow_exact_matches=False
    )
    return merged.sort_values("_row")["_last"].reset_index(drop=True)


def _days(delta: pd.Series) -> np.ndarray:
    return (delta / DAY).to_numpy(dtype="float64")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0.0 where ``den`` is 0 (features stay non-null so nulls can mean 'unknown entity')."""
    num, den = np.asarray(num, dtype="float64"), np.asarray(den, dtype="float64")
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _money(values: pd.Series) -> np.ndarray:
    """Window totals are differences of running sums: round away the float noise (a 0-order window must be 0.0)."""
    return np.round(values.to_numpy(dtype="float64"), 6)


def _keys(grid: pd.DataFrame) -> pd.DataFrame:
    return grid[["customer_id", "event_timestamp"]].reset_index(drop=True)


def _customer_rfm(grid: pd.DataFrame, orders: pd.DataFrame) -> pd.DataFrame:
    """Recency, frequency and monetary value per snapshot (orders are order lines)."""
    rows = orders[["customer_id", "order_ts", "amount"]].astype({"customer_id": str}).assign(n=1)
    sums = _window_sums(
        grid,
        rows,
        ["customer_id"],
        "order_ts",
        ["n", "amount"],
        {"90d": pd.Timedelta(days=90), "365d": pd.Timedelta(days=365), "all": None},
    )
    t = grid["event_timestamp"].reset_index(drop=True)
    signup = grid["signup_ts"].reset_index(drop=True)
    last = _last_before(grid, rows, "customer_id", "order_ts")
    out = _keys(grid)
    # Never-ordered customers get their tenure as recency: "as long ago as they could have" keeps it finite.
    out["recency_days"] = _days(t - last.fillna(signup))
    out["frequency_90d"] = sums["90d"]["n"].to_numpy(dtype="int64")
    out["monetary_90d"] = _money(sums["90d"]["amount"])
    out["frequency_365d"] = sums["365d"]["n"].to_numpy(dtype="int64")
    out["monetary_365d"] = _money(sums["365d"]["amount"])
    out["avg_order_value"] = _ratio(sums["all"]["amount"], sums["all"]["n"])
    out["tenure_days"] = _days(t - signup)
    return out


def _customer_activity(grid: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """Behavioural counts from the event log over the last 7 and 30 days."""
    ev = events[["customer_id", "event_type", "event_ts"]].astype({"customer_id": str, "event_type": str})
    rows = ev[["customer_id", "event_ts"]].assign(
        views=(ev["event_type"] == "view").astype("int64"),
        carts=(ev["event_type"] == "add_to_cart").astype("int64"),
        purchases=(ev["event_type"] == "purchase").astype("int64"),
    )
    counts = _window_sums(
        grid,
        rows,
        ["customer_id"],
        "event_ts",
        ["views", "carts", "purchases"],
        {"7d": pd.Timedelta(days=7), "30d": pd.Timedelta(days=30)},
    )
    # One row per (customer, active day) stamped at the day's midnight: snapshots fall on midnights, so a day counts
    # only once it is entirely before the snapshot, consistent with the strict "before t" rule of the other counts.
    days = ev.assign(day=ev["event_ts"].dt.floor("D"))[["customer_id", "day"]].drop_duplicates().assign(active=1)
    active = _window_sums(grid, days, ["customer_id"], "day", ["active"], {"30d": pd.Timedelta(days=30)})["30d"]
    out = _keys(grid)
    out["views_7d"] = counts["7d"]["views"].to_numpy(dtype="int64")
    out["views_30d"] = counts["30d"]["views"].to_numpy(dtype="int64")
    out["carts_30d"] = counts["30d"]["carts"].to_numpy(dtype="int64")
    out["purchases_30d"] = counts["30d"]["purchases"].to_numpy(dtype="int64")
    out["active_days_30d"] = active["active"].to_numpy(dtype="int64")
    out["cart_to_purchase_30d"] = _ratio(out["purchases_30d"], out["carts_30d"])
    return out


def _customer_category_mix(grid: pd.DataFrame, orders: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """How many categories a customer bought from in 90 days and the share (of order lines) of the top one."""
    cats = products[["product_id", "category"]].astype(str)
    rows = (
        orders[["customer_id", "product_id", "order_ts"]]
        .astype({"customer_id": str, "product_id": str})
        .merge(cats, on="product_id", how="inner")[["customer_id", "category", "order_ts"]]
        .assign(n=1)
    )
    out = _keys(grid)
    if rows.empty:
        out["n_categories_90d"] = np.zeros(len(out), dtype="int64")
        out["top_category_share_90d"] = 0.0
        return out
    # Query only the (customer, category) pairs that ever occur, not customers x all categories.
    pairs = rows[["customer_id", "category"]].drop_duplicates()
    pair_grid = grid[["customer_id", "event_timestamp"]].assign(_row=np.arange(len(grid)))
    pair_grid = pair_grid.merge(pairs, on="customer_id")
    counts = _window_sums(
        pair_grid, rows, ["customer_id", "category"], "order_ts", ["n"], {"90d": pd.Timedelta(days=90)}
    )["90d"]["n"].to_numpy()
    per_row = pd.DataFrame({"_row": pair_grid["_row"].to_numpy(), "n": counts})
    per_row = per_row[per_row["n"] > 0].groupby("_row")["n"].agg(["count", "max", "sum"])
    per_row = per_row.reindex(np.arange(len(grid)), fill_value=0)
    out["n_categories_90d"] = per_row["count"].to_numpy(dtype="int64")
    out["top_category_share_90d"] = _ratio(per_row["max"], per_row["sum"])
    return out


def _product_sales(
    products: pd.DataFrame, daily_sales: pd.DataFrame, events: pd.DataFrame, times: pd.DatetimeIndex
) -> pd.DataFrame:
    """Daily product snapshots: 7-day average price, units sold over 7/28 days and views over 7 days."""
    ids = products["product_id"].astype(str).to_numpy()
    grid = pd.MultiIndex.from_product([ids, times], names=["product_id", "event_timestamp"]).to_frame(index=False)
    sales = daily_sales[["product_id", "date", "price", "units"]].astype({"product_id": str})
    sales = sales.assign(units=sales["units"].fillna(0).astype("int64"), n=1)
    sums = _window_sums(
        grid,
        sales,
        ["product_id"],
        "date",
        ["price", "n", "units"],
        {"7d": pd.Timedelta(days=7), "28d": pd.Timedelta(days=28)},
    )
    views = events.loc[events["event_type"] == "view", ["product_id", "event_ts"]].astype({"product_id": str})
    view_counts = _window_sums(
        grid, views.assign(views=1), ["product_id"], "event_ts", ["views"], {"7d": pd.Timedelta(days=7)}
    )["7d"]
    base = grid["product_id"].map(products.set_index(products["product_id"].astype(str))["base_price"]).to_numpy()
    w7 = sums["7d"]
    out = grid.copy()
    # Days without a sales row (e.g. before launch) fall back to the list price rather than a null.
    out["price_7d_avg"] = np.where(w7["n"] > 0, _ratio(_money(w7["price"]), w7["n"]), base).astype("float64")
    out["units_7d"] = w7["units"].to_numpy(dtype="int64")
    out["units_28d"] = sums["28d"]["units"].to_numpy(dtype="int64")
    out["views_7d"] = view_counts["views"].to_numpy(dtype="int64")
    return out


def write_atomically(frames: dict[str, pd.DataFrame], features_dir: Path) -> dict[str, Path]:
    """Write every frame as ``<name>.parquet``; nothing is replaced unless every temp file was written."""
    features_dir = Path(features_dir)
    features_dir.mkdir(parents=True, exist_ok=True)
    staged: dict[str, tuple[Path, Path]] = {}
    try:
        for name, frame in frames.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=features_dir)
            os.close(fd)
            staged[name] = (Path(tmp), feature_path(features_dir, name))
            frame.to_parquet(tmp, index=False)
        for tmp, final in staged.values():
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)
    return {name: final for name, (_, final) in staged.items()}
