"""Benchmark: churn online prediction latency over HTTP (real `shopflow serve churn` on localhost).

Usage: SHOPFLOW_HOME=... python scripts/bench_serving.py [--requests 300]
Needs a home where `shopflow run` has completed. Prints p50/p99 latency for 1 and 100 customers per request.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from pipelines.data.io import read_table
from pipelines.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import Server  # noqa: E402  (sibling script)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=300, help="Timed requests per batch size.")
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()

    settings = get_settings()
    ids = read_table(settings.current_batch_dir(), "customers")["customer_id"].tolist()
    key = secrets.token_urlsafe(16)
    t0 = time.perf_counter()
    with Server("churn", key) as server:
        url = server.url
        print(f"server ready in {time.perf_counter() - t0:.1f}s; {len(ids)} customers; {args.requests} requests each")
        rng = np.random.default_rng(0)
        headers = {"Authorization": f"Bearer {key}"}
        print(f"{'batch':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'req/s':>7}")
        with httpx.Client(timeout=30, headers=headers) as client:
            for batch in (1, 100):
                bodies = [{"customer_ids": list(rng.choice(ids, batch, replace=False))} for _ in range(args.requests)]
                for body in bodies[: args.warmup]:
                    client.post(f"{url}/predict", json=body).raise_for_status()
                lat = []
                for body in bodies:
                    t = time.perf_counter()
                    client.post(f"{url}/predict", json=body).raise_for_status()
                    lat.append((time.perf_counter() - t) * 1000)
                lat = np.array(lat)
                print(f"{batch:>6} {np.percentile(lat, 50):>8.1f} {np.percentile(lat, 99):>8.1f} "
                      f"{lat.mean():>8.1f} {1000 / lat.mean():>7.1f}")


if __name__ == "__main__":
    main()
