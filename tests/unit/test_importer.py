"""Importing users' own files: a readable report of every format problem, then a content-addressed batch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.data import io, kinds, schema
from pipelines.data.generator import generate
from pipelines.data.importer import ImportResult, import_batch
from pipelines.data.io import BatchFormatError
from pipelines.settings import PROJECT_ROOT

TINY = {
    "customers": """\
customer_id,signup_ts,region,segment,loyalty_card
c1,2024-01-05T10:00:00Z,north,premium,yes
c2,2024-02-10,south,bargain,no
c3,2024-03-01 08:30:00+02:00,east,regular,
""",
    "products": """\
product_id,category,brand,base_price,cost,image_file
p1,books,Pageturn,12.99,6.50,images/p1.png
p2,toys,Bricko,29.99,15.00,
""",
    "events": """\
event_id,customer_id,product_id,event_type,event_ts
e1,c1,p1,view,2024-03-10T09:00:00Z
e2,c1,p1,add_to_cart,2024-03-10T09:05:00Z
e3,c1,p1,purchase,2024-03-10T09:06:00Z
e4,c2,p2,view,2024-03-11T12:00:00Z
e5,c3,p2,purchase,2024-03-12T18:45:10Z
""",
    "orders": """\
order_id,customer_id,product_id,order_ts,quantity,unit_price,amount
o1,c1,p1,2024-03-10T09:06:00Z,2,12.99,25.98
o2,c3,p2,2024-03-12T18:45:10Z,1,29.99,29.99
""",
    "daily_sales": """\
product_id,date,price,units
p1,2024-03-10,12.99,7
p2,2024-03-10,29.99,3
p1,2024-03-11,11.99,9
p2,2024-03-11,29.99,4
""",
}


def _write_png(path: Path, colour: tuple[int, int, int] = (200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), colour).save(path)


def _write_folder(folder: Path, texts: dict[str, str], images: tuple[str, ...] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.csv").write_text(text)
    for rel in images:
        _write_png(folder / rel)
    return folder


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A hand-written, consistent CSV data set with one product image."""
    return _write_folder(tmp_path / "my-shop", TINY, images=("images/p1.png",))


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    return tmp_path / "landing"


def _problems(src: Path, landing: Path) -> str:
    with pytest.raises(BatchFormatError) as info:
        import_batch(src, landing)
    # Nothing may be stored, not even a half-written temp folder.
    assert not landing.exists() or not any(landing.iterdir())
    return str(info.value)


# ---- success -------------------------------------------------------------------------------------------------


def test_tiny_csv_data_set_imports(tiny: Path, landing: Path) -> None:
    result = import_batch(tiny, landing)
    assert isinstance(result, ImportResult)
    assert result.batch_dir == landing / result.batch_id
    assert result.batch_id == io.batch_hash(result.batch_dir)
    assert result.rows == {"customers": 3, "products": 2, "events": 5, "orders": 2, "daily_sales": 4}
    assert result.images == 1
    assert (result.batch_dir / "images" / "p1.png").read_bytes() == (tiny / "images" / "p1.png").read_bytes()
    # An extra customers column is kept as a typed attribute; elsewhere an extra column is a warning, not an error.
    assert result.attributes == {"customers": {"loyalty_card": "categorical"}}
    assert not any("loyalty_card" in w for w in result.warnings)

    tables = io.read_batch(result.batch_dir)
    assert set(tables) == set(schema.TABLES)  # no ratings file: no ratings table
    for name, table_schema in schema.TABLES.items():
        extra = ["loyalty_card"] if table_schema.attributes else []  # attributes kept, other extra columns dropped
        assert list(tables[name].columns) == [*table_schema.column_names, *extra]
    customers = tables["customers"].set_index("customer_id")
    assert str(customers["signup_ts"].dtype) == "datetime64[ns, UTC]"
    assert customers.loc["c3", "signup_ts"] == pd.Timestamp("2024-03-01T06:30:00Z")
    assert customers.loc["c2", "signup_ts"] == pd.Timestamp("2024-02-10T00:00:00Z")
    products = tables["products"].set_index("product_id")
    assert products.loc["p1", "image_file"] == "images/p1.png" and pd.isna(products.loc["p2", "image_file"])
    assert tables["orders"]["quantity"].tolist() == [2, 1]


def test_reimport_gives_the_same_batch_id(tiny: Path, landing: Path) -> None:
    first = import_batch(tiny, landing)
    second = import_batch(tiny, landing)
    assert second.batch_id == first.batch_id
    assert [p.name for p in landing.iterdir()] == [first.batch_id]


def test_row_order_and_file_format_do_not_change_the_batch_id(tiny: Path, tmp_path: Path) -> None:
    first = import_batch(tiny, tmp_path / "a")
    other = _write_folder(tmp_path / "other", TINY, images=("images/p1.png",))
    (other / "events.csv").unlink()
    events = pd.read_csv(tiny / "events.csv", dtype=str).iloc[::-1]
    events.to_parquet(other / "events.parquet", index=False)
    assert import_batch(other, tmp_path / "b").batch_id == first.batch_id


def test_image_paths_are_optional(tmp_path: Path, landing: Path) -> None:
    texts = TINY | {"products": TINY["products"].replace("images/p1.png", "")}
    result = import_batch(_write_folder(tmp_path / "shop", texts), landing)
    assert result.images == 0 and not (result.batch_dir / "images").exists()


# ---- problems ------------------------------------------------------------------------------------------------


def test_missing_column_is_reported_with_table_and_column(tmp_path: Path, landing: Path) -> None:
    texts = TINY | {"orders": TINY["orders"].replace(",amount", "").replace(",25.98", "").replace(",29.99\n", "\n")}
    message = _problems(_write_folder(tmp_path / "shop", texts, ("images/p1.png",)), landing)
    assert "orders.amount: missing column" in message


def test_unparsable_timestamp_is_reported_with_example_rows(tmp_path: Path, landing: Path) -> None:
    texts = TINY | {"events": TINY["events"].replace("2024-03-11T12:00:00Z", "last tuesday")}
    message = _problems(_write_folder(tmp_path / "shop", texts, ("images/p1.png",)), landing)
    assert "events.event_ts" in message and "timestamp" in message
    assert "row 4: 'last tuesday'" in message


def test_unparsable_number_is_reported(tmp_path: Path, landing: Path) -> None:
    texts = TINY | {"daily_sales": TINY["daily_sales"].replace("p2,2024-03-11,29.99,4", "p2,2024-03-11,29.99,four")}
    message = _problems(_write_folder(tmp_path / "shop", texts, ("images/p1.png",)), landing)
    assert "daily_sales.units" in message and "'four'" in message


def test_a_subset_of_tables_imports_and_says_which_families_it_trains(tmp_path: Path, landing: Path) -> None:
    texts = {k: v for k, v in TINY.items() if k != "daily_sales"}
    result = import_batch(_write_folder(tmp_path / "shop", texts, ("images/p1.png",)), landing)
    assert set(result.rows) == {"customers", "products", "events", "orders"}
    assert io.present_tables(result.batch_dir) == ["customers", "products", "events", "orders"]
    assert set(result.trainable) == {"churn", "ltv", "recommendation"}
    assert result.families["forecasting"].reason == "missing table daily_sales"
    assert "missing table daily_sales" in result.families["pricing"].reason
    # One picture of one category: vision says why it cannot train.
    assert "at least 2 categories" in result.families["vision"].reason
    assert "forecasting: no (missing table daily_sales)" in result.family_report()


def test_empty_folder_is_a_clear_problem(tmp_path: Path, landing: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    message = _problems(folder, landing)
    assert "no table file found" in message and "ratings.csv" in message and "notes.txt" in message


def test_ratings_alone_train_only_recommendation(tmp_path: Path, landing: Path) -> None:
    ratings = "customer_id,product_id,rating,ts\nc1,p1,5,2024-03-01\nc2,p1,2.5,2024-03-02T10:00:00Z\n"
    result = import_batch(_write_folder(tmp_path / "shop", {"ratings": ratings}), landing)
    assert result.rows == {"ratings": 2}
    assert result.trainable == ["recommendation"]
    assert result.families["churn"].reason == "missing table customers"
    stored = io.read_table(result.batch_dir, "ratings")
    assert stored["rating"].tolist() == [5.0, 2.5] and str(stored["ts"].dtype) == "datetime64[ns, UTC]"


def test_ratings_with_bad_values_are_reported(tmp_path: Path, landing: Path) -> None:
    ratings = "customer_id,product_id,rating\nc1,p1,five\n"
    message = _problems(_write_folder(tmp_path / "shop", {"ratings": ratings}), landing)
    assert "ratings.ts: missing column" in message and "ratings.rating" in message and "'five'" in message


def test_transaction_log_is_stored_as_orders(tmp_path: Path, landing: Path) -> None:
    log = "customer_id,date,amount\nc2,2024-03-02,10.5\nc1,2024-03-01T12:00:00Z,3\nc1,2024-03-05,7.25\n"
    result = import_batch(_write_folder(tmp_path / "shop", {"transactions": log}), landing)
    assert result.rows == {"orders": 3}
    assert result.trainable == ["ltv"]
    orders = io.read_table(result.batch_dir, "orders")
    assert orders["order_id"].tolist() == ["O0000001", "O0000002", "O0000003"]  # numbered in time order
    assert orders["customer_id"].tolist() == ["c1", "c2", "c1"]
    assert orders["amount"].tolist() == [3.0, 10.5, 7.25] and orders["unit_price"].tolist() == [3.0, 10.5, 7.25]
    assert (orders["quantity"] == 1).all() and (orders["product_id"] == "ITEM").all()
    # The same log in another row order is the same batch.
    shuffled = "customer_id,date,amount\nc1,2024-03-05,7.25\nc1,2024-03-01T12:00:00Z,3\nc2,2024-03-02,10.5\n"
    again = import_batch(_write_folder(tmp_path / "shop2", {"transactions": shuffled}), tmp_path / "other")
    assert again.batch_id == result.batch_id


def test_orders_and_transactions_together_are_a_problem(tmp_path: Path, landing: Path) -> None:
    texts = {"orders": TINY["orders"], "transactions": "customer_id,date,amount\nc1,2024-03-01,3\n"}
    message = _problems(_write_folder(tmp_path / "shop", texts), landing)
    assert "either orders or transactions" in message


def test_negative_transaction_is_reported(tmp_path: Path, landing: Path) -> None:
    texts = {"transactions": "customer_id,date,amount\nc1,2024-03-01,-3\n"}
    assert "transactions.amount" in _problems(_write_folder(tmp_path / "shop", texts), landing)


def test_labelled_image_folders_become_products(tmp_path: Path, landing: Path) -> None:
    folder = tmp_path / "pictures"
    # Several sizes and modes, one JPEG, one name shared by two categories, a stray text file.
    specs = {
        "images/shoes/red.png": ("RGB", (40, 30)), "images/shoes/blue.jpg": ("RGB", (64, 64)),
        "images/shoes/same.png": ("L", (20, 50)), "images/books/same.png": ("RGBA", (32, 32)),
        "images/books/grey.png": ("L", (16, 16)), "images/books/palette.png": ("P", (25, 25)),
    }
    for rel, (mode, size) in specs.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, size, 128 if mode in ("L", "P") else (200, 30, 30, 128)[: len(mode)]).save(path)
    (folder / "images" / "books" / "README.txt").write_text("not a picture")
    result = import_batch(folder, landing)
    assert result.images == 6 and result.rows == {"products": 6}
    assert any("README.txt" in w for w in result.warnings)
    products = io.read_table(result.batch_dir, "products").set_index("product_id")
    assert sorted(products.index) == ["blue", "books_same", "grey", "palette", "red", "shoes_same"]
    assert products.loc["red", "category"] == "shoes" and products.loc["grey", "category"] == "books"
    assert (products["image_file"] == "images/" + products.index + ".png").all()
    assert products["base_price"].isna().all() and products["cost"].isna().all()
    for pid, (mode, size) in (("red", ("RGB", (40, 30))), ("grey", ("L", (16, 16))),
                              ("books_same", ("RGB", (32, 32))), ("palette", ("RGB", (25, 25)))):
        with Image.open(result.batch_dir / "images" / f"{pid}.png") as img:
            assert (img.format, img.mode, img.size) == ("PNG", mode, size), pid
    with Image.open(result.batch_dir / "images" / "books_same.png") as img:  # half-transparent red on white
        assert img.getpixel((0, 0)) == (227, 142, 142)  # round(200 * 128/255 + 255 * 127/255), ...
    assert result.trainable == ["vision"]


def test_unreadable_labelled_picture_is_reported(tmp_path: Path, landing: Path) -> None:
    folder = tmp_path / "pictures"
    _write_png(folder / "images" / "a" / "x.png")
    (folder / "images" / "b").mkdir(parents=True)
    (folder / "images" / "b" / "y.png").write_text("not a png")
    assert "images/b/y.png" in _problems(folder, landing)


def test_historical_import_is_marked_in_the_manifest(tiny: Path, landing: Path) -> None:
    plain = import_batch(tiny, landing)
    historical = import_batch(tiny, landing, historical=True)
    assert historical.batch_id != plain.batch_id and historical.historical
    assert not (plain.batch_dir / "manifest.json").exists()
    assert kinds.read_manifest(historical.batch_dir) == {"historical": True}
    assert io.read_batch(historical.batch_dir).keys() == io.read_batch(plain.batch_dir).keys()


def test_missing_image_is_reported(tmp_path: Path, landing: Path) -> None:
    message = _problems(_write_folder(tmp_path / "shop", TINY), landing)
    assert "products.image_file" in message and "missing" in message and "images/p1.png" in message


def test_unreadable_image_is_reported(tmp_path: Path, landing: Path) -> None:
    folder = _write_folder(tmp_path / "shop", TINY)
    (folder / "images").mkdir()
    (folder / "images" / "p1.png").write_text("not a png")
    assert "not a readable image" in _problems(folder, landing)


def test_all_problems_are_reported_at_once(tmp_path: Path, landing: Path) -> None:
    texts = dict(TINY)
    texts["customers"] = TINY["customers"].replace("signup_ts,", "signed_up,")
    texts["events"] = TINY["events"].replace("2024-03-12T18:45:10Z", "12/03/2024")
    texts["orders"] = TINY["orders"].replace("o2,c3,p2,2024-03-12T18:45:10Z,1,", "o2,c3,p2,2024-03-12T18:45:10Z,one,")
    err_text = _problems(_write_folder(tmp_path / "shop", texts), landing)
    for expected in ("orders.quantity", "customers.signup_ts", "events.event_ts", "products.image_file"):
        assert expected in err_text
    assert err_text.count("\n  - ") == 4  # one readable line per problem


def test_source_must_be_a_folder(tmp_path: Path, landing: Path) -> None:
    with pytest.raises(BatchFormatError, match="not a folder"):
        import_batch(tmp_path / "nowhere", landing)


# ---- shared format with the generator and the docs ---------------------------------------------------------


def test_a_generated_batch_reimports_to_the_same_id(tmp_path: Path) -> None:
    batch = generate(tmp_path / "landing", tmp_path / "truth", customers=30, end=dt.date(2025, 1, 31), history_days=90)
    result = import_batch(batch.batch_dir, tmp_path / "again")
    assert result.batch_id == batch.batch_id  # the products' extra views (views/<id>/) come along
    assert result.images == len(list(batch.batch_dir.rglob("*.png"))) > result.rows["products"]


def test_docs_example_data_set_imports(tmp_path: Path, landing: Path) -> None:
    stored = {k: v for k, v in schema.EXAMPLE_CSV.items() if k in schema.ALL_TABLES}
    folder = _write_folder(tmp_path / "example", stored, images=("images/P0001.png",))
    for name, table_schema in (schema.ALL_TABLES | schema.IMPORT_TABLES).items():
        header = schema.EXAMPLE_CSV[name].splitlines()[0].split(",")
        assert header == table_schema.column_names, name
    result = import_batch(folder, landing)
    assert result.warnings == ()
    assert set(result.rows) == set(schema.ALL_TABLES)
    orders = io.read_table(result.batch_dir, "orders")
    assert np.allclose(orders["amount"], orders["quantity"].astype(float) * orders["unit_price"])
    assert io.read_table(result.batch_dir, "customers")["churned"].tolist()[0] == 0
    log = import_batch(_write_folder(tmp_path / "log", {"transactions": schema.EXAMPLE_CSV["transactions"]}),
                       tmp_path / "log-landing")
    assert log.rows == {"orders": 2}


def test_family_data_covers_every_registered_family() -> None:
    from pipelines.registry import family_data, load_registry

    assert set(family_data()) == set(load_registry())
    for need in family_data().values():
        assert set(need.all_of) | set(need.any_of) <= set(schema.ALL_TABLES)


def test_missing_optional_column_is_stored_as_nulls(tiny: Path, landing: Path) -> None:
    result = import_batch(tiny, landing)  # TINY's customers have no churned column
    customers = io.read_table(result.batch_dir, "customers")
    assert list(customers.columns) == [*schema.ALL_TABLES["customers"].column_names, "loyalty_card"]  # + attribute
    assert customers["churned"].isna().all() and str(customers["churned"].dtype) == "Int64"


def test_docs_data_schema_is_generated_from_the_schema() -> None:
    from pipelines.data import schema_doc

    docs = (PROJECT_ROOT / "docs" / "data-schema.md").read_text()
    assert docs == schema_doc.markdown(), "regenerate: python -m pipelines.data.schema_doc > docs/data-schema.md"
    for table in (schema.ALL_TABLES | schema.IMPORT_TABLES).values():
        for col in table.columns:
            assert f"| `{col.name}` |" in docs


def test_customer_attribute_columns_are_typed_numeric_or_categorical(tmp_path: Path, landing: Path) -> None:
    customers = ("customer_id,signup_ts,plan,calls,minutes,area_code\n"
                 "c1,2024-01-05,intl,3,120.5,415\nc2,2024-01-06,basic,0,,408\nc3,2024-01-07,,1,98,area_510\n")
    result = import_batch(_write_folder(tmp_path / "shop", {"customers": customers}), landing)
    assert result.attributes == {"customers": {"plan": "categorical", "calls": "numeric", "minutes": "numeric",
                                               "area_code": "categorical"}}
    stored = io.read_table(result.batch_dir, "customers").set_index("customer_id")
    assert stored["calls"].dtype == "float64" and stored.loc["c2", "calls"] == 0.0
    assert pd.isna(stored.loc["c2", "minutes"]) and pd.isna(stored.loc["c3", "plan"])
    assert stored.loc["c3", "area_code"] == "area_510" and stored.loc["c1", "area_code"] == "415"
    assert stored["region"].isna().all()  # region and segment are optional attributes
    assert result.families["churn"].reason == "missing table orders (or a `churned` label in customers)"


def test_every_family_can_train_on_a_generated_batch_by_its_data_check(tmp_path: Path) -> None:
    """``require`` (what `shopflow run` asks before each training DAG) sees every table a family's check reads:
    churn needs customers plus orders, although only customers are its required table."""
    from pipelines.data.kinds import require
    from pipelines.registry import family_data
    from pipelines.settings import Settings
    from pipelines.spec import DataContext

    batch = generate(tmp_path / "landing", tmp_path / "truth", customers=30, end=dt.date(2025, 1, 31), history_days=90)
    ctx = DataContext(Settings(home=tmp_path / "home"), batch.batch_dir, batch.batch_id)
    for family in family_data():
        require(ctx, family)
    (batch.batch_dir / "orders.parquet").unlink()
    with pytest.raises(kinds.MissingDataError, match="churn cannot train"):
        require(DataContext(Settings(home=tmp_path / "home"), batch.batch_dir, batch.batch_id), "churn")
