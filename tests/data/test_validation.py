"""The data-quality gate with real Great Expectations runs on tiny hand-built batches (no GX mocks)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines.data.current import read_pending
from pipelines.data.io import read_table, write_table
from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import Settings, ValidationSettings
from pipelines.validation.gate import (
    BatchNotFoundError,
    DataValidationError,
    ValidationReport,
    current_or_latest_batch,
    gate,
    latest_landing_batch,
    validate_batch,
)

AS_OF = dt.datetime(2025, 6, 1, 12, tzinfo=dt.timezone.utc)


def make_tables(customers: int = 20, end: dt.datetime = AS_OF, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A small shop that satisfies every expectation (about 100 events per customer)."""
    rng = np.random.default_rng(seed)
    end_ts = pd.Timestamp(end)
    n_products = max(10, customers // 10)
    n_events = customers * 100
    n_orders = max(10, customers)
    cust_ids = [f"c{i:05d}" for i in range(customers)]
    prod_ids = [f"p{i:04d}" for i in range(n_products)]
    base_price = rng.uniform(5, 200, n_products).round(2)

    customers_df = pd.DataFrame(
        {
            "customer_id": cust_ids,
            "signup_ts": end_ts - pd.to_timedelta(rng.uniform(30, 365, customers), unit="D"),
            "region": rng.choice(["north", "south", "east", "west"], customers),
            "segment": rng.choice(["premium", "regular", "budget"], customers),
        }
    )
    products_df = pd.DataFrame(
        {
            "product_id": prod_ids,
            "category": rng.choice(["shoes", "books", "toys"], n_products),
            "brand": rng.choice(["acme", "globex"], n_products),
            "base_price": base_price,
            "cost": (base_price * 0.6).round(2),
            "image_file": [None] * n_products,
        }
    )
    events_df = pd.DataFrame(
        {
            "event_id": [f"e{i:07d}" for i in range(n_events)],
            "customer_id": rng.choice(cust_ids, n_events),
            "product_id": rng.choice(prod_ids, n_events),
            "event_type": rng.choice(["view", "add_to_cart", "purchase"], n_events, p=[0.85, 0.12, 0.03]),
            "event_ts": end_ts - pd.to_timedelta(rng.uniform(0, 30 * 24 * 3600, n_events), unit="s"),
        }
    )
    events_df.loc[0, "event_ts"] = end_ts - pd.Timedelta(minutes=5)  # fresh even for tiny shops
    prod_idx = rng.integers(0, n_products, n_orders)
    qty = rng.integers(1, 4, n_orders)
    orders_df = pd.DataFrame(
        {
            "order_id": [f"o{i:06d}" for i in range(n_orders)],
            "customer_id": rng.choice(cust_ids, n_orders),
            "product_id": [prod_ids[i] for i in prod_idx],
            "order_ts": end_ts - pd.to_timedelta(rng.uniform(0, 30 * 24 * 3600, n_orders), unit="s"),
            "quantity": qty,
            "unit_price": base_price[prod_idx],
            "amount": (qty * base_price[prod_idx]).round(2),
        }
    )
    orders_df.loc[0, "order_ts"] = end_ts - pd.Timedelta(hours=1)
    days = pd.date_range(end=end_ts.normalize() - pd.Timedelta(days=1), periods=3, freq="D")
    grid = pd.MultiIndex.from_product([prod_ids, days], names=["product_id", "date"]).to_frame(index=False)
    grid["price"] = np.repeat(base_price, len(days))
    grid["units"] = rng.integers(0, 20, len(grid))
    return {
        "customers": customers_df,
        "products": products_df,
        "events": events_df,
        "orders": orders_df,
        "daily_sales": grid,
    }


def land(settings: Settings, batch_id: str, tables: dict[str, pd.DataFrame]) -> Path:
    batch_dir = settings.landing_dir / batch_id
    for name, df in tables.items():
        write_table(df, batch_dir, name)
    return batch_dir


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path)


@pytest.fixture(scope="module")
def good() -> dict[str, pd.DataFrame]:
    return make_tables()


def _copy(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k: v.copy() for k, v in tables.items()}


def test_valid_batch_passes_and_is_accepted_as_pending(settings: Settings, good) -> None:
    """Accepting is not making current: CURRENT moves only once the batch's features are switched in."""
    from pipelines.data.current import read_history, read_pending

    land(settings, "b1", good)
    report = gate("b1", settings, as_of=AS_OF)

    assert report.success, report.summary()
    assert report.failed == []
    assert report.evaluated > 50
    assert report.row_counts["events"] == len(good["events"])
    assert read_pending(settings) == "b1" and current_or_latest_batch(settings) == "b1"
    assert not settings.current_pointer.exists() and current_batch_dir(settings) is None
    assert [(e["event"], e["batch_id"]) for e in read_history(settings)] == [("accept", "b1")]
    assert report.baseline is None and any("no earlier accepted batch" in n for n in report.notes)
    assert report.profile["orders"]["rows"] == len(good["orders"])
    assert not (settings.landing_dir / "b1").exists()
    stored = json.loads((settings.batches_dir / "b1" / "report.json").read_text())
    assert stored["success"] is True and stored["batch_id"] == "b1"
    assert report.data_docs_index is not None and report.data_docs_index.exists()
    assert report.summary_path is not None and "PASSED" in report.summary_path.read_text()
    assert set(report.data_docs_pages) == set(good)
    json.dumps(report.to_dict())  # usable as an Airflow XCom
    assert ValidationReport.from_dict(report.to_dict()) == report


def test_rerunning_a_good_batch_is_idempotent(settings: Settings, good) -> None:
    land(settings, "b1", good)
    first = gate("b1", settings, as_of=AS_OF)
    mtime = (settings.batches_dir / "b1" / "report.json").stat().st_mtime_ns
    second = gate("b1", settings)  # no as_of: a re-judgement "now" would be stale, so proves no re-run
    assert second.already_accepted and not first.already_accepted
    assert dataclasses.replace(second, already_accepted=False) == first
    assert (settings.batches_dir / "b1" / "report.json").stat().st_mtime_ns == mtime
    assert read_pending(settings) == "b1"
    assert current_or_latest_batch(settings) == "b1"

    # The same content landing again (same id) is recognised and the duplicate dropped.
    land(settings, "b1", good)
    assert dataclasses.replace(gate("b1", settings), already_accepted=False) == first
    assert not (settings.landing_dir / "b1").exists()

    # Validating the same folder twice reuses the GX project and gives the same verdict.
    land(settings, "b2", good)
    a = validate_batch(settings.landing_dir / "b2", settings, as_of=AS_OF)
    b = validate_batch(settings.landing_dir / "b2", settings, as_of=AS_OF)
    assert a.success and b.success and a.evaluated == b.evaluated

    # Changed thresholds regenerate the stored suites instead of reusing stale ones.
    strict = Settings(home=settings.home, validation=ValidationSettings(min_rows=100_000))
    c = validate_batch(settings.landing_dir / "b2", strict, as_of=AS_OF)
    assert not c.success and {f["check"] for f in c.failed} == {"row_count"}
    # Every table but the catalogue (one product is a real shop: its own floor of 1 row).
    assert {f["table"] for f in c.failed} == set(good) - {"products"}


def _corrupt_nulls(t):
    t["customers"].loc[3, "signup_ts"] = None  # region and segment are optional attributes: nulls allowed


def _corrupt_duplicate_pk(t):
    t["orders"].loc[5, "order_id"] = t["orders"].loc[4, "order_id"]


def _corrupt_compound_pk(t):
    t["daily_sales"] = pd.concat([t["daily_sales"], t["daily_sales"].iloc[[0]]], ignore_index=True)


def _corrupt_fk(t):
    t["orders"].loc[2, "customer_id"] = "ghost-customer"


def _corrupt_negative_amount(t):
    t["orders"].loc[1, "amount"] = -10.0


def _corrupt_bad_event_type(t):
    t["events"].loc[0, "event_type"] = "refund"


CORRUPTIONS = [
    # (corruption, table, column, expectation type, an offending value quoted in the report or None)
    (_corrupt_nulls, "customers", "signup_ts", "expect_column_values_to_not_be_null", None),
    (_corrupt_duplicate_pk, "orders", "order_id", "expect_column_values_to_be_unique", "o000004"),
    (_corrupt_compound_pk, "daily_sales", "product_id, date", "expect_compound_columns_to_be_unique", None),
    (_corrupt_fk, "orders", "customer_id", "expect_column_values_to_be_in_set", "ghost-customer"),
    (_corrupt_negative_amount, "orders", "amount", "expect_column_values_to_be_between", -10.0),
    # ... which also breaks amount = quantity * unit_price (the same expectation type, on the derived column).
    (lambda t: None, "orders", "amount", "expect_column_values_to_be_between", None),
    (_corrupt_bad_event_type, "events", "event_type", "expect_column_values_to_be_in_set", "refund"),
]


def test_each_corruption_fails_exactly_its_expectation(settings: Settings, good) -> None:
    """The corruptions touch different columns, so one GX run checks them all (each GX run costs ~2 s)."""
    tables = _copy(good)
    for corrupt, *_ in CORRUPTIONS:
        corrupt(tables)
    land(settings, "bad", tables)
    report = validate_batch(settings.landing_dir / "bad", settings, as_of=AS_OF)

    assert not report.success
    got = sorted((f["table"], f["column"], f["expectation_type"]) for f in report.failed)
    assert got == sorted((t, c, e) for _, t, c, e, _ in CORRUPTIONS), report.summary()
    summary = report.summary_path.read_text()
    for _, table, column, expectation_type, example in CORRUPTIONS:
        failure = next(f for f in report.failed if (f["table"], f["column"]) == (table, column))
        line = next(line for line in summary.splitlines() if line.startswith(tuple("0123456789")) and
                    f" {table}.{column}:" in line)
        assert expectation_type in line
        if example is not None:
            assert example in failure["unexpected_examples"] and str(example) in line
    assert "Failures per table: customers=1, events=1, orders=4, daily_sales=1." in summary
    assert "orders.amount: expected amount = quantity * unit_price" in summary
    json.dumps(report.to_dict())


def test_stale_batch_fails_freshness(settings: Settings, good) -> None:
    land(settings, "old", good)
    report = validate_batch(settings.landing_dir / "old", settings, as_of=AS_OF + dt.timedelta(days=30))
    assert not report.success
    stale = {(f["table"], f["column"]) for f in report.failed if f["check"] == "freshness"}
    assert stale == {("events", "event_ts"), ("orders", "order_ts"), ("daily_sales", "date")}
    assert {f["expectation_type"] for f in report.failed} == {"expect_column_max_to_be_between"}
    assert "at most 3 days old" in report.summary_path.read_text()


def test_future_timestamps_fail(settings: Settings, good) -> None:
    land(settings, "future", good)
    report = validate_batch(settings.landing_dir / "future", settings, as_of=AS_OF - dt.timedelta(days=10))
    assert not report.success
    assert "not_in_future" in {f["check"] for f in report.failed}


def test_distribution_bounds(settings: Settings, good) -> None:
    tables = _copy(good)
    tables["events"]["event_type"] = "purchase"  # every event a purchase: funnel is broken
    tables["orders"]["quantity"] = 500
    land(settings, "odd", tables)
    report = validate_batch(settings.landing_dir / "odd", settings, as_of=AS_OF)
    failed = {(f["table"], f["column"], f["check"]) for f in report.failed}
    assert ("events", "event_type", "distribution") in failed
    assert ("orders", "quantity", "distribution") in failed


def test_missing_column_and_unreadable_file_are_reported(settings: Settings, good) -> None:
    tables = _copy(good)
    tables["orders"] = tables["orders"].drop(columns=["amount"])
    batch = land(settings, "broken", tables)
    (batch / "customers.parquet").write_bytes(b"this is not parquet")

    report = validate_batch(batch, settings, as_of=AS_OF)
    assert not report.success and report.evaluated == 0
    tables_named = {f["table"] for f in report.failed}
    assert tables_named == {"customers", "orders"}
    summary = report.summary_path.read_text()
    assert "orders.amount: missing column" in summary and "cannot read customers.parquet" in summary
    assert {f["column"] for f in report.failed if f["table"] == "orders"} == {"amount"}
    assert report.data_docs_index is not None and report.data_docs_index.exists()


def test_failed_batch_is_quarantined_and_current_untouched(settings: Settings, good) -> None:
    land(settings, "good1", good)
    gate("good1", settings, as_of=AS_OF)

    tables = _copy(good)
    _corrupt_fk(tables)
    _corrupt_negative_amount(tables)
    land(settings, "bad1", tables)
    with pytest.raises(DataValidationError) as err:
        gate("bad1", settings, as_of=AS_OF)

    report = err.value.report
    assert "orders.customer_id" in str(err.value) and "orders.amount" in str(err.value)
    quarantined = settings.quarantine_dir / "bad1"
    assert quarantined.is_dir() and (quarantined / "orders.parquet").exists()
    assert "orders.customer_id" in (quarantined / "summary.md").read_text()
    assert str(report.data_docs_index) in (quarantined / "summary.md").read_text()
    assert report.data_docs_index.name == "index.html" and report.data_docs_index.exists()
    assert not (settings.landing_dir / "bad1").exists()
    assert not (settings.batches_dir / "bad1").exists()
    assert read_pending(settings) == "good1" and not settings.current_pointer.exists()
    assert (settings.batches_dir / "good1" / "orders.parquet").exists()

    # A retry of the quarantined id fails the same way instead of "not found".
    with pytest.raises(DataValidationError):
        gate("bad1", settings, as_of=AS_OF)


def test_unreadable_batch_is_quarantined_not_a_traceback(settings: Settings, good) -> None:
    batch = land(settings, "badproducts", _copy(good))
    (batch / "products.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(DataValidationError, match="products"):
        gate("badproducts", settings, as_of=AS_OF)
    assert (settings.quarantine_dir / "badproducts" / "summary.md").exists()
    assert not settings.current_pointer.exists()

    (settings.landing_dir / "empty").mkdir(parents=True)
    with pytest.raises(DataValidationError, match="no table file"):
        gate("empty", settings, as_of=AS_OF)


def test_a_subset_of_tables_is_validated_with_its_own_suites(settings: Settings, good) -> None:
    """Events and orders without customers or products: no foreign keys into absent tables, no crash."""
    land(settings, "subset", {"events": good["events"], "orders": good["orders"]})
    report = validate_batch(settings.landing_dir / "subset", settings, as_of=AS_OF)
    assert report.success, report.summary()
    assert set(report.row_counts) == set(report.data_docs_pages) == {"events", "orders"}
    assert report.families["ltv"] == "" and report.families["recommendation"] == ""
    assert report.families["churn"] == "missing table customers"
    summary = report.summary_path.read_text()
    assert "can train: ltv, recommendation." in summary and "churn: not trainable (missing table customers)" in summary

    # With customers present the foreign key is checked again and a ghost customer fails it.
    orders = good["orders"].copy()
    orders.loc[2, "customer_id"] = "ghost-customer"
    land(settings, "subset-fk", {"customers": good["customers"], "orders": orders})
    bad = validate_batch(settings.landing_dir / "subset-fk", settings, as_of=AS_OF)
    assert [(f["table"], f["column"], f["check"]) for f in bad.failed] == [("orders", "customer_id", "foreign_key")]


def _ratings(n: int = 30, end: dt.datetime = AS_OF) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "customer_id": [f"c{i % 7:05d}" for i in range(n)], "product_id": [f"p{i % 11:04d}" for i in range(n)],
        "rating": rng.integers(1, 6, n).astype(float),
        "ts": pd.Timestamp(end) - pd.to_timedelta(np.arange(n) * 3600, unit="s"),
    })


def test_ratings_are_validated_against_their_bounds(settings: Settings) -> None:
    ratings = _ratings()
    ratings.loc[4, "rating"] = 6.0
    ratings.loc[5, "rating"] = 0.0
    land(settings, "ratings", {"ratings": ratings})
    report = validate_batch(settings.landing_dir / "ratings", settings, as_of=AS_OF)
    assert [(f["table"], f["column"], f["check"]) for f in report.failed] == [("ratings", "rating", "range")]
    assert report.failed[0]["unexpected_count"] == 2
    assert report.families == {"churn": "missing table customers",
                               "ltv": "missing table orders", "recommendation": "",
                               "forecasting": "missing table daily_sales",
                               "pricing": "missing table products; missing table daily_sales",
                               "vision": "missing table products"}


def _sales(freq: str, periods: int, last: pd.Timestamp) -> pd.DataFrame:
    dates = pd.date_range(end=last, periods=periods, freq=freq)
    return pd.DataFrame({"product_id": np.repeat(["a", "b"], periods), "date": np.tile(dates, 2),
                         "price": 2.5, "units": 3})


@pytest.mark.parametrize(("freq", "last", "fresh"), [
    ("7D", "2025-05-23", True),   # a weekly series dated at the week's start, 9 days old: within 1.5 weeks
    ("7D", "2025-05-20", False),  # 12 days old: more than 1.5 weeks
    ("MS", "2025-05-01", True),   # monthly, 31 days old: 1.5 months is about 46 days
    ("MS", "2025-04-01", False),  # 61 days old
])
def test_freshness_is_measured_in_the_series_own_periods(freq, last, fresh) -> None:
    from pipelines.validation.suites import expectation_parameters, fresh_parameter

    last = pd.Timestamp(last, tz="UTC")
    sales = _sales(freq, 30, last)
    params = expectation_parameters({"daily_sales": sales}, ValidationSettings(), AS_OF)
    assert (sales["date"].max() >= params[fresh_parameter("daily_sales")]) is fresh, (freq, last)
    # Daily data keeps the plain day bound.
    daily = _sales("D", 30, pd.Timestamp(AS_OF).normalize() - pd.Timedelta(days=4))
    assert daily["date"].max() < expectation_parameters({"daily_sales": daily}, ValidationSettings(), AS_OF)[
        fresh_parameter("daily_sales")]


def test_weekly_sales_pass_the_gate_and_the_report_names_the_frequency(settings: Settings) -> None:
    last = pd.Timestamp(AS_OF).normalize() - pd.Timedelta(days=8)
    land(settings, "weekly", {"daily_sales": _sales("7D", 30, last)})
    report = validate_batch(settings.landing_dir / "weekly", settings, as_of=AS_OF)
    assert report.success, report.summary()
    assert any("daily_sales is weekly" in n for n in report.notes)
    assert "daily_sales is weekly" in report.summary_path.read_text()
    assert report.families["forecasting"] == ""
    assert report.families["pricing"] == "missing table products"


def test_historical_batches_are_judged_at_their_own_end(settings: Settings, good) -> None:
    from pipelines.data.kinds import MANIFEST, manifest_bytes

    old = make_tables(end=AS_OF - dt.timedelta(days=400))
    land(settings, "old", old)
    assert {f["check"] for f in validate_batch(settings.landing_dir / "old", settings, as_of=AS_OF).failed} == {
        "freshness"}
    # Explicitly, per call.
    report = validate_batch(settings.landing_dir / "old", settings, as_of=AS_OF, historical=True)
    assert report.success, report.summary()
    assert any(n.startswith("historical batch") for n in report.notes)
    summary = report.summary_path.read_text()
    assert "historical batch: judged as of its own newest timestamp" in summary
    # One "judged as of" time, and it is the batch's own end, not the time of the call.
    assert summary.lower().count("judged as of") == 2 and summary.count("Judged as of ") == 1
    judged = pd.Timestamp(report.as_of)
    assert pd.Timestamp(AS_OF) - pd.Timedelta(days=402) <= judged <= pd.Timestamp(AS_OF) - pd.Timedelta(days=399)
    # Per batch, through the manifest the import writes.
    (settings.landing_dir / "old" / MANIFEST).write_bytes(manifest_bytes(historical=True))
    assert validate_batch(settings.landing_dir / "old", settings, as_of=AS_OF).success
    # Historical still needs every table to reach the batch's end: orders that stop a year earlier are stale.
    lagging = _copy(old)
    lagging["orders"]["order_ts"] -= pd.Timedelta(days=365)
    land(settings, "lagging", lagging)
    lag = validate_batch(settings.landing_dir / "lagging", settings, as_of=AS_OF, historical=True)
    assert [(f["table"], f["check"]) for f in lag.failed] == [("orders", "freshness")]
    # For every batch, through settings (SHOPFLOW_VALIDATION__HISTORICAL=true).
    land(settings, "old2", old)
    everyone = Settings(home=settings.home, validation=ValidationSettings(historical=True))
    assert gate("old2", everyone, as_of=AS_OF).success


def test_unknown_batch_is_a_clear_error(settings: Settings) -> None:
    with pytest.raises(BatchNotFoundError, match="nope"):
        gate("nope", settings)


def test_latest_landing_batch(settings: Settings, good) -> None:
    import os

    assert latest_landing_batch(settings) is None
    older = land(settings, "older", {"customers": good["customers"]})
    newer = land(settings, "newer", {"customers": good["customers"]})
    (settings.landing_dir / ".partial").mkdir()
    os.utime(older, (1_000, 1_000))
    os.utime(newer, (2_000, 2_000))
    assert latest_landing_batch(settings) == "newer"
    assert current_or_latest_batch(settings) == "newer"


def test_suites_are_generated_from_the_schema() -> None:
    """Every schema rule has its expectation, with meta and notes for the summary (no GX run needed)."""
    from pipelines.data.schema import ALL_TABLES
    from pipelines.validation.suites import build_suites, expectation_parameters, fk_parameter, fresh_parameter

    suites = build_suites(ValidationSettings())
    assert set(suites) == set(ALL_TABLES)
    for name, schema in ALL_TABLES.items():
        exps = suites[name].expectations
        assert all(e.meta.get("rule") and e.meta.get("check") and e.notes for e in exps), name
        kinds = {(type(e).__name__, getattr(e, "column", None)) for e in exps}
        for col in schema.columns:
            assert (("ExpectColumnValuesToNotBeNull", col.name) in kinds) == (not col.nullable), (name, col.name)
        for fk in schema.foreign_keys:
            fk_exps = [e for e in exps if e.meta["check"] == "foreign_key" and e.column == fk.column]
            assert len(fk_exps) == 1 and fk_exps[0].value_set == {"$PARAMETER": fk_parameter(fk)}
    compound = [e for e in suites["daily_sales"].expectations if e.meta["check"] == "primary_key"]
    assert type(compound[0]).__name__ == "ExpectCompoundColumnsToBeUnique"
    assert list(compound[0].column_list) == ["product_id", "date"]
    fresh = {n for n, s in suites.items() if any(e.meta["check"] == "freshness" for e in s.expectations)}
    assert fresh == {"events", "orders", "daily_sales", "ratings"}

    params = expectation_parameters(make_tables(), ValidationSettings(max_staleness_days=2), AS_OF)
    assert params["fresh_after"] == AS_OF - dt.timedelta(days=2)
    assert params[fresh_parameter("orders")] == params[fresh_parameter("daily_sales")] == params["fresh_after"]
    assert len(params["fk__customers__customer_id"]) == 20

    # Only the tables present: foreign keys into absent tables are left out.
    subset = build_suites(ValidationSettings(), ["orders", "customers"])
    assert list(subset) == ["customers", "orders"]
    fks = [e.column for e in subset["orders"].expectations if e.meta["check"] == "foreign_key"]
    assert fks == ["customer_id"]
    only_orders = expectation_parameters({"orders": make_tables()["orders"]}, ValidationSettings(), AS_OF)
    assert not any(k.startswith("fk__") for k in only_orders)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("hostile", ["..", "../data", "data", "/", "CURRENT/..", "../../victim"])
def test_hostile_batch_ids_touch_nothing(settings: Settings, good, tmp_path: Path, hostile: str) -> None:
    """`shopflow validate ..` once deleted the whole home: ids are checked before any file is touched."""
    from pipelines.paths import InvalidIdError

    land(settings, "b1", good)
    gate("b1", settings, as_of=AS_OF)
    victim = tmp_path.parent / f"{tmp_path.name}-victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    before = _tree(settings.home)
    if hostile == "../../victim":
        hostile = str(victim)  # an absolute path
    with pytest.raises((InvalidIdError, BatchNotFoundError)):
        gate(hostile, settings, as_of=AS_OF)
    assert _tree(settings.home) == before
    assert read_pending(settings) == "b1" and (settings.batches_dir / "b1").is_dir()
    assert (victim / "keep").read_text() == "keep"


def test_a_symlinked_landing_folder_is_refused(settings: Settings, good, tmp_path: Path) -> None:
    from pipelines.paths import UnsafePathError

    elsewhere = land(Settings(home=tmp_path / "elsewhere"), "real", good)
    settings.landing_dir.mkdir(parents=True)
    (settings.landing_dir / "linked").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        gate("linked", settings, as_of=AS_OF)
    assert (elsewhere / "orders.parquet").exists()
    assert not settings.batches_dir.exists() and not settings.quarantine_dir.exists()


def test_an_image_path_leaving_the_batch_folder_fails_the_gate(settings: Settings, good) -> None:
    tables = _copy(good)
    tables["products"]["image_file"] = "images/ok.png"
    tables["products"].loc[0, "image_file"] = "../../../etc/passwd"
    tables["products"].loc[1, "image_file"] = "/etc/passwd"
    report = validate_batch(land(settings, "paths", tables), settings, as_of=AS_OF)
    failed = [f for f in report.failed if f["column"] == "image_file"]
    assert len(failed) == 1 and failed[0]["check"] == "format" and failed[0]["unexpected_count"] == 2
    assert "relative path inside the batch folder" in failed[0]["message"]


def test_one_product_catalogue_without_optional_columns_is_accepted(settings: Settings, tmp_path: Path) -> None:
    """A shop selling one product, whose catalogue has only the required columns, is a real shop, not a
    truncated export: it imports and passes; pricing says what it lacks."""
    from pipelines.data.importer import import_batch

    src = tmp_path / "one-product"
    src.mkdir()
    (src / "products.csv").write_text("product_id,category\nP1,books\n")
    days = pd.date_range(end=AS_OF.date(), periods=60, freq="D")
    pd.DataFrame({"product_id": "P1", "date": days.strftime("%Y-%m-%d"), "price": 9.99,
                  "units": np.arange(60) % 7 + 1}).to_csv(src / "daily_sales.csv", index=False)
    result = import_batch(src, settings.landing_dir)
    products = read_table(result.batch_dir, "products")
    assert products[["brand", "base_price", "cost"]].isna().all().all()
    assert "products.base_price is missing" in result.families["pricing"].reason
    report = validate_batch(result.batch_dir, settings, as_of=AS_OF)
    assert report.success, report.summary()
    assert report.row_counts["products"] == 1
