"""File sources over the Parquet feature tables written by ``pipelines.features.build``.

Each path is a bare file name, relative on purpose: Feast joins a relative path with ``RepoConfig.repo_path``, and
ShopFlow sets that per store to the feature snapshot being read (``pipelines.features.snapshot.features_root``:
the snapshot ``CURRENT`` names, or a pinned one). The registry therefore never changes when a new batch's snapshot is
switched in, and a reader cannot see one batch's features through another batch's pointer.
"""

from feast import FileSource, PushSource

from pipelines.features.build import feature_file


def _source(name: str) -> FileSource:
    return FileSource(
        name=name,
        path=feature_file(name),
        timestamp_field="event_timestamp",
        # One row per entity and snapshot time; created_timestamp (the batch's end) would break ties Feast meets.
        created_timestamp_column="created_timestamp",
    )


customer_rfm_source = _source("customer_rfm")
customer_activity_source = _source("customer_activity")
customer_category_mix_source = _source("customer_category_mix")
product_sales_source = _source("product_sales")

SOURCES = (customer_rfm_source, customer_activity_source, customer_category_mix_source, product_sales_source)

# Real-time cart events: pushed by the serving layer (``POST /events``) straight into the online store. The batch
# source only names where a log of pushes would live offline; nothing trains on it and it is never materialised.
cart_push_source = PushSource(
    name="cart_push",
    batch_source=FileSource(name="cart_events", path="cart_events.parquet", timestamp_field="event_timestamp"),
)
