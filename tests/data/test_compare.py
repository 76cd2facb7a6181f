"""The gate compares each batch with the last accepted one (real GX runs on generated shops, real Feast publish).

One test per finding of the adversarial trial (prices x10, a vanished category, one $1M order line,
amount != quantity * unit_price): the batch is rejected and CURRENT does not move. And the other side: batches of
other seeds (same shop size) and a normal next-day batch pass, so the bounds are not trigger-happy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from pipelines.data.current import read_current, read_pending
from pipelines.data.generator import generate
from pipelines.data.io import read_batch, write_table
from pipelines.settings import Settings, ValidationSettings
from pipelines.validation import compare
from pipelines.validation.gate import DataValidationError, gate, validate_batch

CUSTOMERS = 300
END = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2)


def _generated(settings: Settings, seed: int, end: dt.date = END) -> str:
    return generate(settings.landing_dir, settings.truth_dir, customers=CUSTOMERS, seed=seed, end=end).batch_id


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Settings, str]:
    """A home whose CURRENT is a generated batch, accepted by the gate and switched in with its features."""
    from pipelines.publish import use

    settings = Settings(home=tmp_path_factory.mktemp("compare") / "home")
    b1 = _generated(settings, seed=1)
    assert gate(b1, settings).success
    use(settings, b1, reason="baseline of the comparison tests")
    return settings, b1


def _land_variant(settings: Settings, base: str, name: str, change: Callable[[dict[str, pd.DataFrame]], None]) -> str:
    tables = read_batch(settings.batches_dir / base)
    change(tables)
    for table, df in tables.items():
        write_table(df, settings.landing_dir / name, table)
    return name


def _prices_x10(t):
    t["products"][["base_price", "cost"]] *= 10
    t["orders"][["unit_price", "amount"]] *= 10
    t["daily_sales"]["price"] *= 10


def _vanished_category(t):
    t["products"].loc[t["products"]["category"] == "toys", "category"] = "home"


def _million_dollar_line(t):
    t["orders"].loc[t["orders"].index[0], ["quantity", "unit_price", "amount"]] = [1, 1_000_000.0, 1_000_000.0]


def _amount_not_quantity_times_price(t):
    rows = t["orders"].index[::100]
    t["orders"].loc[rows, "amount"] = (t["orders"].loc[rows, "amount"] * 1.5).round(2)


def _half_the_orders(t):
    t["orders"] = t["orders"].iloc[: len(t["orders"]) * 4 // 10]


FINDINGS = [
    # (change, failures that must be among the reported ones, words in the summary)
    (_prices_x10, {("orders", "unit_price", "shift"), ("orders", "amount", "shift"), ("products", "base_price", "shift"),
                   ("daily_sales", "price", "shift")}, ["orders.unit_price: median", "(x10)"]),
    (_vanished_category, {("products", "category", "vanished")}, ["products.category: value(s) ['toys'] of the "
                                                                   "previous batch vanished"]),
    (_million_dollar_line, {("orders", "amount", "tail"), ("orders", "unit_price", "tail")},
     ["orders.amount: maximum", "-> 1,000,000"]),
    (_amount_not_quantity_times_price, {("orders", "amount", "consistency")},
     ["orders.amount: expected amount = quantity * unit_price"]),
    (_half_the_orders, {("orders", None, "row_count_change")}, ["orders: rows"]),
]


@pytest.mark.parametrize(("change", "expected", "words"), FINDINGS, ids=[f[0].__name__.strip("_") for f in FINDINGS])
def test_a_broken_batch_is_rejected_and_current_stays(shop, change, expected, words) -> None:
    settings, b1 = shop
    before = read_current(settings)
    name = _land_variant(settings, b1, change.__name__.strip("_").replace("_", "-"), change)
    with pytest.raises(DataValidationError) as err:
        gate(name, settings)
    report = err.value.report
    failed = {(f["table"], f["column"], f["check"]) for f in report.failed}
    assert expected <= failed, report.summary()
    summary = str(err.value)
    for w in words:
        assert w in summary, summary
    assert report.baseline == b1 and f"What moved since batch {b1}" in summary
    assert read_current(settings) == before and read_pending(settings) is None
    assert (settings.quarantine_dir / name / "summary.md").exists() and not (settings.batches_dir / name).exists()


def test_amount_check_fails_on_consistency_alone(shop) -> None:
    """A few inconsistent lines move no distribution: the cross-column rule alone catches them."""
    settings, b1 = shop
    name = _land_variant(settings, b1, "few-bad-amounts", _amount_not_quantity_times_price)
    report = validate_batch(settings.landing_dir / name, settings)
    assert [(f["table"], f["column"], f["check"]) for f in report.failed] == [("orders", "amount", "consistency")]
    assert report.failed[0]["unexpected_count"] == len(range(0, report.row_counts["orders"], 100))


def test_the_report_says_what_moved_with_previous_and_new_values(shop) -> None:
    settings, b1 = shop
    name = _land_variant(settings, b1, "x10-report", _prices_x10)
    report = validate_batch(settings.landing_dir / name, settings)
    entry = next(e for e in report.comparison if (e["table"], e["column"], e["stat"]) == ("orders", "unit_price",
                                                                                            "median"))
    assert not entry["ok"] and entry["new"] == pytest.approx(10 * entry["previous"]) and entry["ratio"] == pytest.approx(10)
    assert f"median {compare._num(entry['previous'])} -> {compare._num(entry['new'])} (x10)" in entry["message"]
    assert "allowed x0.5 to x2" in entry["message"]
    # Unchanged columns are compared too, and pass.
    quantity = next(e for e in report.comparison if (e["table"], e["column"], e["stat"]) == ("orders", "quantity",
                                                                                           "median"))
    assert quantity["ok"] and quantity["ratio"] == 1.0


def test_new_category_values_warn_below_the_bound_and_fail_above(shop) -> None:
    settings, b1 = shop

    def rename(share: float):
        def change(t):
            customers = t["customers"]
            customers.loc[customers.index[: int(len(customers) * share)], "region"] = "atlantis"
        return change

    few = validate_batch(settings.landing_dir / _land_variant(settings, b1, "few-new", rename(0.05)), settings)
    assert few.success, few.summary()
    assert any("customers.region" in w and "atlantis" in w for w in few.warnings)
    assert "Warning: customers.region" in few.summary_path.read_text()
    many = validate_batch(settings.landing_dir / _land_variant(settings, b1, "many-new", rename(0.3)), settings)
    assert ("customers", "region", "new_values") in {(f["table"], f["column"], f["check"]) for f in many.failed}


def test_comparison_can_be_switched_off_for_a_deliberate_break(shop) -> None:
    settings, b1 = shop
    name = _land_variant(settings, b1, "x10-on-purpose", _prices_x10)
    off = Settings(home=settings.home, validation=ValidationSettings(compare=False))
    report = validate_batch(settings.landing_dir / name, off)
    assert report.success and report.baseline is None and report.comparison == []
    assert any("SHOPFLOW_VALIDATION__COMPARE=false" in n for n in report.notes)


def test_successive_generated_batches_and_a_next_day_batch_pass(tmp_path: Path) -> None:
    """Other seeds of a shop the same size, then a normal next-day batch: no false alarm."""
    settings = Settings(home=tmp_path / "home")
    previous = None
    for seed, end in ((1, END), (2, END), (3, END), (3, END + dt.timedelta(days=1))):
        batch = _generated(settings, seed, end)
        report = gate(batch, settings)
        assert report.success, report.summary()
        assert report.baseline == previous
        if previous is not None:
            assert report.comparison and all(e["ok"] for e in report.comparison)
            assert {e["check"] for e in report.comparison} == set(compare.CHECKS)
        assert read_pending(settings) == batch
        previous = batch


def test_only_tables_both_batches_hold_are_compared(tmp_path: Path) -> None:
    """Bring-your-own batches hold subsets: a table the previous batch did not have is validated, not compared."""
    settings = Settings(home=tmp_path / "home")
    full = read_batch(settings.landing_dir / _generated(settings, seed=4))
    for table in ("orders",):
        write_table(full[table], settings.landing_dir / "orders-only", table)
    assert gate("orders-only", settings).success
    for table in ("customers", "orders"):
        write_table(full[table], settings.landing_dir / "with-customers", table)
    report = validate_batch(settings.landing_dir / "with-customers", settings)
    assert report.success, report.summary()
    assert {e["table"] for e in report.comparison} == {"orders"}
    assert any("not in orders-only: customers" in n for n in report.notes)


def test_profile_and_bounds() -> None:
    tables = {"orders": pd.DataFrame({"quantity": [1, 2, 3, 4], "unit_price": [1.0, 2.0, 3.0, 100.0],
                                      "amount": [1.0, 4.0, 9.0, 400.0]}),
              "products": pd.DataFrame({"category": ["a", "a", "b", None], "base_price": [1.0, None, 2.0, 3.0]})}
    prof = compare.profile(tables)
    assert prof["orders"]["rows"] == 4 and prof["orders"]["numeric"]["unit_price"]["median"] == 2.5
    assert prof["products"]["categorical"]["category"] == {"a": 2, "b": 1}
    assert prof["products"]["numeric"]["base_price"]["n"] == 3
    params = compare.parameters(prof, ValidationSettings(max_shift_ratio=2, max_row_count_ratio=3))
    assert params["cmp__orders__rows_min"] == 1 and params["cmp__orders__rows_max"] == 12
    assert params["cmp__orders__unit_price__median_min"] == 1.25
    assert params["cmp__orders__unit_price__median_max"] == 5.0
    assert params["cmp__products__category__values"] == ["a", "b"]
