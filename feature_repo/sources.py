"""File sources over the Parquet snapshots written by ``pipelines.features.build``.

Paths come from ``get_settings()`` when Feast imports this module (``feast apply`` runs with the ShopFlow
environment). The library applies the same objects for whatever ``Settings`` it is given, so it re-points them with
:func:`locate` first; the file name of each source is its name.
"""

from pathlib import Path

from feast import FileSource

from pipelines.features.build import feature_path
from pipelines.settings import get_settings


def _source(name: str) -> FileSource:
    return FileSource(
        name=name,
        path=str(feature_path(get_settings().features_dir, name)),
        timestamp_field="event_timestamp",
        # Snapshots are never rewritten within a batch; created_timestamp only breaks ties between batches.
        created_timestamp_column="created_timestamp",
    )


customer_rfm_source = _source("customer_rfm")
customer_activity_source = _source("customer_activity")
customer_category_mix_source = _source("customer_category_mix")
product_sales_source = _source("product_sales")

SOURCES = (customer_rfm_source, customer_activity_source, customer_category_mix_source, product_sales_source)


def locate(features_dir: Path) -> None:
    """Point every source at the files in ``features_dir`` (settings other than the process-wide ones)."""
    for source in SOURCES:
        source.file_options.uri = str(feature_path(features_dir, source.name))
