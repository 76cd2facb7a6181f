"""False-alarm rate and detection of the monitor's data-drift check on generated shops.

One reference shop (seed 100) against N other seeds of the same shop (no drift: any alert is a false alarm) and
against the same seeds with the generator's drift knob; the churn FeatureService's newest features, default
`MonitorSettings`. Usage: python scripts/bench_monitor_false_alarms.py [--seeds 20] [--customers 1500]
[--drift 0.5 1.0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

from pipelines.data.generator import generate
from pipelines.features.build import build_feature_tables
from pipelines.monitoring.checks import BREACH, drift_check
from pipelines.monitoring.reference import newest_features
from pipelines.settings import MonitorSettings

COLUMNS = {**{c: "customer_rfm" for c in ("recency_days", "frequency_90d", "monetary_90d", "frequency_365d",
                                         "monetary_365d", "avg_order_value", "tenure_days")},
           **{c: "customer_activity" for c in ("views_7d", "views_30d", "carts_30d", "purchases_30d",
                                               "active_days_30d", "cart_to_purchase_30d")},
           "n_categories_90d": "customer_category_mix", "top_category_share_90d": "customer_category_mix"}


def features(root: Path, seed: int, customers: int, drift: float):
    out = root / f"{seed}-{drift}"
    batch = generate(out / "landing", out / "truth", customers=customers, seed=seed, drift=drift,
                     end=dt.date(2026, 11, 30))
    build_feature_tables(batch.batch_dir, None, out_dir=out / "features")
    return newest_features(out / "features", COLUMNS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--drift", type=float, nargs="*", default=[0.5, 1.0])
    args = parser.parse_args()
    m = MonitorSettings()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reference = features(root, 100, args.customers, 0.0)
        results = {}
        for drift in [0.0, *args.drift]:
            checks = [drift_check("data drift", reference, features(root, 101 + i, args.customers, drift), m, "x")
                      for i in range(args.seeds)]
            results[f"drift={drift}"] = {
                "alert_runs": f"{sum(c.status == BREACH for c in checks)}/{len(checks)}",
                "drifted_columns": f"{sum(d.drifted for c in checks for d in c.drift)}/"
                                   f"{sum(len(c.drift) for c in checks)}",
                "max_psi_median": sorted(c.values["max_psi"] for c in checks)[len(checks) // 2],
                "max_psi_max": max(c.values["max_psi"] for c in checks),
            }
    print(json.dumps({"customers": args.customers, "seeds": args.seeds, "max_psi": m.max_psi, "alpha": m.alpha,
                      **results}, indent=1))


if __name__ == "__main__":
    main()
