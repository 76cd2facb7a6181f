"""Importing users' own files: a readable report of every format problem, then a content-addressed batch."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.data import io, schema
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
    assert any("loyalty_card" in w for w in result.warnings)  # extra column: a warning, not an error

    tables = io.read_batch(result.batch_dir)
    for name, table_schema in schema.TABLES.items():
        assert list(tables[name].columns) == table_schema.column_names  # extra columns dropped
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


def test_missing_table_is_reported(tmp_path: Path, landing: Path) -> None:
    texts = {k: v for k, v in TINY.items() if k != "daily_sales"}
    message = _problems(_write_folder(tmp_path / "shop", texts, ("images/p1.png",)), landing)
    assert "daily_sales" in message and "daily_sales.csv" in message


def test_missing_image_is_reported(tmp_path: Path, landing: Path) -> None:
    message = _problems(_write_folder(tmp_path / "shop", TINY), landing)
    assert "products.image_file" in message and "missing" in message and "images/p1.png" in message


def test_unreadable_image_is_reported(tmp_path: Path, landing: Path) -> None:
    folder = _write_folder(tmp_path / "shop", TINY)
    (folder / "images").mkdir()
    (folder / "images" / "p1.png").write_text("not a png")
    assert "not a readable image" in _problems(folder, landing)


def test_all_problems_are_reported_at_once(tmp_path: Path, landing: Path) -> None:
    texts = {k: v for k, v in TINY.items() if k != "orders"}
    texts["customers"] = TINY["customers"].replace("region,", "area,")
    texts["events"] = TINY["events"].replace("2024-03-12T18:45:10Z", "12/03/2024")
    err_text = _problems(_write_folder(tmp_path / "shop", texts), landing)
    for expected in ("orders", "customers.region", "events.event_ts", "products.image_file"):
        assert expected in err_text
    assert err_text.count("\n  - ") == 4  # one readable line per problem


def test_source_must_be_a_folder(tmp_path: Path, landing: Path) -> None:
    with pytest.raises(BatchFormatError, match="not a folder"):
        import_batch(tmp_path / "nowhere", landing)


# ---- shared format with the generator and the docs ---------------------------------------------------------


def test_a_generated_batch_reimports_to_the_same_id(tmp_path: Path) -> None:
    batch = generate(tmp_path / "landing", tmp_path / "truth", customers=30, end=dt.date(2025, 1, 31), history_days=90)
    result = import_batch(batch.batch_dir, tmp_path / "again")
    assert result.batch_id == batch.batch_id
    assert result.images == result.rows["products"]


def test_docs_example_data_set_imports(tmp_path: Path, landing: Path) -> None:
    folder = _write_folder(tmp_path / "example", schema.EXAMPLE_CSV, images=("images/P0001.png",))
    for name, table_schema in schema.TABLES.items():
        header = schema.EXAMPLE_CSV[name].splitlines()[0].split(",")
        assert header == table_schema.column_names, name
    result = import_batch(folder, landing)
    assert result.warnings == ()
    orders = io.read_table(result.batch_dir, "orders")
    assert np.allclose(orders["amount"], orders["quantity"].astype(float) * orders["unit_price"])


def test_docs_data_schema_is_generated_from_the_schema() -> None:
    docs = (PROJECT_ROOT / "docs" / "data-schema.md").read_text()
    assert docs == schema.markdown(), "regenerate: python -m pipelines.data.schema > docs/data-schema.md"
    for table in schema.TABLES.values():
        for col in table.columns:
            assert f"| `{col.name}` |" in docs
