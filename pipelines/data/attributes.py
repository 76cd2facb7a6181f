"""Customer attributes: the descriptive columns of the customers table, as model features.

Every column of ``customers`` that is not its key, its time column or a label is an attribute: the schema's own
``region`` and ``segment`` and any further column a shop brings (plan, state, contract, age...). The import keeps
those extra columns and types each one (:func:`typed`): numeric (float) or categorical (text). Parquet dtypes
declare the kind (numbers and booleans are numeric, ``string``/``category`` are categorical); untyped text (every
CSV column) is numeric when every value reads as a number, categorical otherwise.

Families turn attributes into model inputs with :func:`preprocessor` (one-hot categoricals, numerics passed through
or imputed and scaled).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.data.schema import CUSTOMERS, TableSchema

MAX_LEVELS = 30
"""Most one-hot columns per categorical attribute (rarer levels share one "infrequent" column)."""
MIN_LEVEL_SHARE = 0.005
"""A level seen in fewer than this share of the rows is "infrequent"."""


def extra_columns(df: pd.DataFrame, schema: TableSchema) -> list[str]:
    """Columns of ``df`` beyond the schema's (kept as attributes when the schema takes them)."""
    return [str(c) for c in df.columns if c not in schema.column_names]


def typed(s: pd.Series) -> pd.Series:
    """One attribute column in its stored kind: ``float64`` (numeric) or ``string`` (categorical, stripped;
    blank = null)."""
    if pd.api.types.is_bool_dtype(s) or (pd.api.types.is_numeric_dtype(s)
                                         and not isinstance(s.dtype, pd.CategoricalDtype)):
        return pd.to_numeric(s, errors="coerce").astype("float64")
    declared = isinstance(s.dtype, (pd.CategoricalDtype, pd.StringDtype))
    text = s.astype("string").str.strip()
    text = text.mask(text == "")
    if not declared:
        number = pd.to_numeric(text.astype(object), errors="coerce")
        if text.notna().any() and number[text.notna()].notna().all():
            return number.astype("float64")
    return text


def attribute_names(customers: pd.DataFrame, schema: TableSchema = CUSTOMERS) -> list[str]:
    """The attribute columns of a customers table: all but its key, its time column and its label columns."""
    skip = {*schema.primary_key, schema.time_column, *(c.name for c in schema.columns if c.label)}
    return [str(c) for c in customers.columns if c not in skip]


def split_kinds(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """``(numeric, categorical)`` column names of an attribute frame (categoricals: anything not numeric)."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    return numeric, [c for c in frame.columns if c not in set(numeric)]


def customer_attributes(ctx: Any) -> pd.DataFrame:
    """The attributes of every customer of the batch, indexed by ``customer_id`` (string).

    Numeric attributes are ``float64`` (NaN when missing); categorical ones are ``object`` text (None when
    missing). All-null columns (e.g. an optional column the batch left out) carry nothing and are dropped.

    Args:
        ctx: A :class:`pipelines.spec.DataContext` (anything with ``table(name)``).
    """
    customers = ctx.table("customers")
    names = attribute_names(customers)
    out = customers[names].copy()
    for c in names:
        out[c] = typed(out[c])
    out = out.loc[:, [c for c in names if out[c].notna().any()]]
    numeric, categorical = split_kinds(out)
    for c in categorical:
        out[c] = out[c].astype(object).where(out[c].notna(), None)
    out.index = pd.Index(customers["customer_id"].astype(str).to_numpy(), name="customer_id")
    return out[numeric + categorical]


MISSING = "(missing)"
"""The level a missing categorical value is encoded as."""


def model_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """``frame``'s numeric columns as ``float64`` (NaN kept) and categorical ones as text (missing:
    :data:`MISSING`), in that order: the input :func:`preprocessor` expects."""
    out = pd.DataFrame(index=frame.index)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in categorical:
        col = frame[c]
        out[c] = col.astype(object).where(col.notna(), MISSING).astype(str)
    return out


def preprocessor(numeric: list[str], categorical: list[str], scale: bool):
    """A scikit-learn ``ColumnTransformer`` from a frame with these columns to a float matrix.

    Numeric columns come first, in order: passed through as they are (NaN kept, for trees) or, with ``scale``,
    median-imputed (plus a missing-indicator per column with gaps) and standardised (for linear models).
    Categorical columns (text, see :func:`model_input`) are one-hot encoded (missing is its own level; levels rarer than
    :data:`MIN_LEVEL_SHARE`, beyond :data:`MAX_LEVELS`, or unseen at fit time share the "infrequent" column).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = (make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                         StandardScaler()) if scale else "passthrough")
    cat = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=MIN_LEVEL_SHARE, max_categories=MAX_LEVELS,
                        sparse_output=False, dtype="float64")
    parts = []
    if numeric:
        parts.append(("numeric", num, list(numeric)))
    if categorical:
        parts.append(("categorical", cat, list(categorical)))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
