"""The seeded shop generator: determinism, the raw-table contract, the hidden truth and its oracles."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from pipelines.data import io
from pipelines.data.generator import (
    CATEGORIES,
    GeneratedBatch,
    churn_probability,
    expected_spend,
    generate,
    load_truth,
)
from pipelines.data.schema import TABLES

END = dt.date(2025, 3, 31)
SMALL = {"customers": 400, "seed": 7, "end": END}


def _file_digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> GeneratedBatch:
    root = tmp_path_factory.mktemp("shop")
    return generate(root / "landing", root / "truth", **SMALL)


@pytest.fixture(scope="module")
def tables(shop: GeneratedBatch) -> dict[str, pd.DataFrame]:
    return io.read_batch(shop.batch_dir)


@pytest.fixture(scope="module")
def truth(shop: GeneratedBatch) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return load_truth(shop.truth_dir)


# ---- determinism and layout ----------------------------------------------------------------------------------


def test_same_arguments_give_identical_files_and_batch_id(shop: GeneratedBatch, tmp_path: Path) -> None:
    again = generate(tmp_path / "landing", tmp_path / "truth", **SMALL)
    assert again.batch_id == shop.batch_id
    assert _file_digests(again.batch_dir) == _file_digests(shop.batch_dir)
    assert _file_digests(again.truth_dir) == _file_digests(shop.truth_dir)


def test_batch_id_is_the_content_hash_and_generation_is_idempotent(shop: GeneratedBatch) -> None:
    assert shop.batch_dir.name == shop.batch_id == io.batch_hash(shop.batch_dir)
    landing = shop.batch_dir.parent
    again = generate(landing, shop.truth_dir.parent, **SMALL)
    assert again.batch_id == shop.batch_id
    assert [p.name for p in landing.iterdir()] == [shop.batch_id]  # no duplicate, no leftover temp folder


def test_different_seed_gives_a_different_batch(shop: GeneratedBatch, tmp_path: Path) -> None:
    other = generate(tmp_path / "landing", tmp_path / "truth", **(SMALL | {"seed": 8}))
    assert other.batch_id != shop.batch_id


def test_batch_holds_the_five_tables_and_one_image_per_product(shop: GeneratedBatch, tables) -> None:
    assert sorted(p.name for p in shop.batch_dir.glob("*.parquet")) == sorted(f"{t}.parquet" for t in TABLES)
    products = tables["products"]
    assert (products["image_file"] == "images/" + products["product_id"] + ".png").all()
    assert sorted(p.name for p in (shop.batch_dir / "images").iterdir()) == sorted(
        f"{pid}.png" for pid in products["product_id"]
    )
    with Image.open(shop.batch_dir / products["image_file"].iloc[0]) as img:
        assert img.format == "PNG" and img.mode == "RGB" and img.size == (32, 32)
    # More views of every product for the vision family (pipelines/data/product_images.py).
    views = sorted(p.relative_to(shop.batch_dir).as_posix() for p in (shop.batch_dir / "views").rglob("*.png"))
    assert views == sorted(f"views/{pid}/{k}.png" for pid in products["product_id"] for k in range(1, 6))


def test_truth_is_kept_out_of_the_batch(shop: GeneratedBatch) -> None:
    assert shop.truth_dir.name == shop.batch_id
    assert not shop.truth_dir.resolve().is_relative_to(shop.batch_dir.resolve())
    assert not any("truth" in p.name or p.name == "meta.json" for p in shop.batch_dir.rglob("*"))
    assert {p.name for p in shop.truth_dir.iterdir()} == {
        "customers_truth.parquet",
        "products_truth.parquet",
        "meta.json",
    }


# ---- the raw-table contract --------------------------------------------------------------------------------


def test_tables_satisfy_the_schema(tables: dict[str, pd.DataFrame]) -> None:
    for name, schema in TABLES.items():
        df = tables[name]
        assert list(df.columns) == schema.column_names, name
        assert len(df) > 0, name
        assert not df.duplicated(list(schema.primary_key)).any(), f"{name}: duplicate primary key"
        for col in schema.columns:
            s = df[col.name]
            if not col.nullable:
                assert s.notna().all(), f"{name}.{col.name} has nulls"
            if col.min_value is not None:
                assert (s.dropna() >= col.min_value).all(), f"{name}.{col.name} below minimum"
            if col.max_value is not None:
                assert (s.dropna() <= col.max_value).all(), f"{name}.{col.name} above maximum"
            if col.allowed is not None:
                assert s.dropna().isin(col.allowed).all(), f"{name}.{col.name} has unknown values"
        for fk in schema.foreign_keys:
            assert df[fk.column].isin(tables[fk.table][fk.ref_column]).all(), f"{name}.{fk.column} dangles"


def test_ids_and_categories_look_like_a_shop(tables: dict[str, pd.DataFrame]) -> None:
    assert tables["customers"]["customer_id"].str.fullmatch(r"C\d{6}").all()
    assert tables["products"]["product_id"].str.fullmatch(r"P\d{4}").all()
    assert len(tables["products"]) == 40  # max(40, 400 // 25)
    assert set(tables["products"]["category"]) == set(CATEGORIES)
    assert set(tables["customers"]["segment"]) == {"bargain", "regular", "premium"}
    assert set(tables["customers"]["region"]) == {"north", "south", "east", "west", "central"}
    products = tables["products"]
    margin = products["cost"] / products["base_price"]
    assert margin.between(0.39, 0.71).all()


def test_order_amount_is_quantity_times_unit_price(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["orders"]
    assert np.allclose(orders["amount"], orders["quantity"].astype(float) * orders["unit_price"], atol=0.005)
    assert orders["quantity"].between(1, 3).all()


def test_unit_price_is_the_days_price(tables: dict[str, pd.DataFrame]) -> None:
    orders = tables["orders"].assign(date=lambda d: d["order_ts"].dt.floor("D"))
    joined = orders.merge(tables["daily_sales"], on=["product_id", "date"], how="left", validate="many_to_one")
    assert joined["price"].notna().all()
    assert np.allclose(joined["unit_price"], joined["price"])


def test_daily_sales_cover_every_product_and_day(tables: dict[str, pd.DataFrame]) -> None:
    sales = tables["daily_sales"]
    assert len(sales) == len(tables["products"]) * 540
    assert sales["date"].min() == pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=539)
    assert sales["date"].max() == pd.Timestamp(END, tz="UTC")
    assert (sales["date"] == sales["date"].dt.floor("D")).all()


def test_every_order_has_a_purchase_event_preceded_by_a_cart(tables: dict[str, pd.DataFrame]) -> None:
    events, orders = tables["events"], tables["orders"]
    purchases = events[events["event_type"] == "purchase"]
    matched = orders.merge(
        purchases, left_on=["customer_id", "product_id", "order_ts"], right_on=["customer_id", "product_id", "event_ts"]
    )
    assert len(purchases) == len(orders) == len(matched)
    first_cart = events[events["event_type"] == "add_to_cart"].groupby("customer_id")["event_ts"].min()
    first_order = orders.groupby("customer_id")["order_ts"].min()
    assert (first_cart.reindex(first_order.index) <= first_order).all()


def test_no_activity_before_signup_or_after_death(tables: dict[str, pd.DataFrame], truth) -> None:
    customers_truth = truth[0].set_index("customer_id")
    signup = tables["customers"].set_index("customer_id")["signup_ts"]
    assert customers_truth["death_ts"].notna().any()  # some customers churned for good
    for table, ts in (("events", "event_ts"), ("orders", "order_ts")):
        df = tables[table]
        assert (df[ts] >= signup.loc[df["customer_id"]].to_numpy()).all(), table
        death = customers_truth["death_ts"].loc[df["customer_id"]].to_numpy()
        after_death = pd.notna(death) & (df[ts].to_numpy() > death)
        assert not after_death.any(), f"{table}: {after_death.sum()} rows after the customer's death"


def test_no_signups_in_the_last_30_days(tables: dict[str, pd.DataFrame]) -> None:
    last_allowed = pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(days=30)
    assert (tables["customers"]["signup_ts"] < last_allowed).all()


def test_data_is_fresh_newest_event_on_the_end_day(tables: dict[str, pd.DataFrame]) -> None:
    newest = tables["events"]["event_ts"].max()
    assert newest.date() == END
    assert tables["orders"]["order_ts"].max() <= newest


def test_end_defaults_to_yesterday_utc(tmp_path: Path) -> None:
    """Fresh, yet wholly in the past: the newest events lie on yesterday (UTC), none after now."""
    batch = generate(tmp_path / "landing", tmp_path / "truth", customers=30, history_days=90)
    newest = io.read_table(batch.batch_dir, "events")["event_ts"].max()
    assert newest.date() == dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert newest <= pd.Timestamp.now(tz="UTC")


# ---- truth and oracles ---------------------------------------------------------------------------------------


def test_truth_tables(truth, tables) -> None:
    customers_truth, products_truth, meta = truth
    assert meta["seed"] == 7 and meta["customers"] == 400 and meta["end"] == END.isoformat()
    assert list(customers_truth["customer_id"]) == list(tables["customers"]["customer_id"])
    assert list(products_truth["product_id"]) == list(tables["products"]["product_id"])
    prefs = customers_truth[[f"pref_{c}" for c in CATEGORIES]]
    assert np.allclose(prefs.sum(axis=1), 1.0)
    assert (customers_truth[["purchase_rate", "churn_hazard", "mean_spend"]] > 0).all().all()
    assert 1 / 40 < customers_truth["purchase_rate"].median() < 1 / 15
    assert 1 / 500 < customers_truth["churn_hazard"].median() < 1 / 200
    assert products_truth["elasticity"].between(-2.5, -0.8).all()
    assert np.isclose(products_truth["popularity"].sum(), 1.0)


def test_bargain_customers_churn_faster(truth) -> None:
    hazard = truth[0].groupby("segment")["churn_hazard"].median()
    assert hazard["bargain"] > hazard["regular"] > hazard["premium"]


def test_mean_spend_matches_realised_order_amounts(truth, tables) -> None:
    """mean_spend is each customer's expected order amount: averaged over orders it matches the realised mean."""
    per_order = tables["orders"].merge(truth[0][["customer_id", "mean_spend"]], on="customer_id")
    assert abs(per_order["mean_spend"].mean() / per_order["amount"].mean() - 1) < 0.1


def test_churn_probability_is_a_probability_and_one_for_the_dead(truth) -> None:
    customers_truth = truth[0]
    cutoff = pd.Timestamp(END, tz="UTC") - pd.Timedelta(days=60)
    p = churn_probability(customers_truth, cutoff, 30)
    assert p.index.equals(pd.Index(customers_truth["customer_id"]))
    assert p.between(0.0, 1.0).all()
    dead = (customers_truth["death_ts"] <= cutoff).to_numpy()
    assert dead.any() and (p[dead] == 1.0).all()
    assert (p[~dead] < 1.0).any()
    # A longer window can only make "no order at all" less likely.
    assert (churn_probability(customers_truth, cutoff, 60) <= p + 1e-12).all()


def test_expected_spend_is_zero_for_the_dead_and_calibrated(truth, tables) -> None:
    customers_truth = truth[0]
    cutoff = pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(days=60)
    spend = expected_spend(customers_truth, cutoff, 60)
    dead = (customers_truth["death_ts"] <= cutoff).to_numpy()
    assert (spend[dead] == 0).all() and (spend[~dead] > 0).all()
    orders = tables["orders"]
    realised = orders.loc[orders["order_ts"] > cutoff, "amount"].sum()
    assert 0.7 < realised / spend.sum() < 1.3


def test_oracle_predicts_the_realised_churn_label(truth, tables) -> None:
    """AUC of the true churn probability against 'no order in the H days after a cutoff 60 days before end'."""
    horizon = 30
    cutoff = pd.Timestamp(END, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(days=60)
    customers = tables["customers"]
    population = customers.loc[customers["signup_ts"] <= cutoff, "customer_id"]
    orders = tables["orders"]
    in_window = orders[(orders["order_ts"] > cutoff) & (orders["order_ts"] <= cutoff + pd.Timedelta(days=horizon))]
    churned = ~population.isin(in_window["customer_id"])
    assert 0.2 < churned.mean() < 0.9  # both classes are well represented
    p = churn_probability(truth[0], cutoff, horizon).loc[population]
    auc = roc_auc_score(churned, p)
    assert auc > 0.75, auc


def test_price_elasticity_is_visible_in_daily_sales(tables, truth) -> None:
    sales = tables["daily_sales"].merge(tables["products"][["product_id", "base_price"]], on="product_id")
    sales["log_rel_price"] = np.log(sales["price"] / sales["base_price"])
    sales["log_units"] = np.log(sales["units"].astype(float) + 0.5)
    slopes = sales.groupby("product_id")[["log_rel_price", "log_units"]].apply(
        lambda g: np.polyfit(g["log_rel_price"], g["log_units"], 1)[0]
    )
    true = truth[1].set_index("product_id")["elasticity"].loc[slopes.index]
    assert np.corrcoef(slopes, true)[0, 1] > 0.3
    assert (slopes < 0).mean() > 0.8
