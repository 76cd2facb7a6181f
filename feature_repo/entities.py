"""Entities (join keys) of the ShopFlow feature store. Ids are strings in every raw table."""

from feast import Entity, ValueType

customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A registered shop customer.",
)

product = Entity(
    name="product",
    join_keys=["product_id"],
    value_type=ValueType.STRING,
    description="A catalogue product.",
)
