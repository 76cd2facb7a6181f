"""Benchmark: the serving core against its parts, in one process, and churn latency over HTTP.

Usage: SHOPFLOW_HOME=... python scripts/bench_serving.py [--repeats 3000] [--requests 300]
Needs a home where `shopflow run` has completed. Prints:

1. For each family served from Feast (churn, LTV), one customer per call, interleaved so machine load hits all
   alike: Feast's own ``get_online_features(service).to_dict()``; the bare model call (the family's scoring of an
   already-built feature row); the project's serving core (``ServingSpec.batch_infer``: Feast read, feature matrix,
   model); and the whole runtime (``ServingRuntime.handle``: A/B routing, alias cache, response body).
2. Churn over HTTP (a real ``shopflow serve churn``), one sequential client: p50/p99 for 1 and 100 customers.
"""

from __future__ import annotations

import argparse
import copy
import os
import secrets
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from pipelines.data.io import read_table
from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import get_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import Server  # noqa: E402  (sibling script)


def core_table(settings, customers: list[str], repeats: int) -> None:
    from pipelines import tracking
    from pipelines.registry import load_registry
    from pipelines.serving import FeastPredictor, ServingRuntime

    client = tracking.configure(settings)
    print("| family | Feast to_dict | bare model call | Feast + model | serving core | core / (Feast + model) "
          "| ServingRuntime.handle |")
    print("|---|---|---|---|---|---|---|")
    for name, spec in load_registry().items():
        serving = spec.serving
        if serving is None or serving.batch_infer is None:
            continue
        champion = tracking.version_by_alias(client, name, "champion")
        if champion is None:
            print(f"| {name} | no champion in this home: skipped |")
            continue
        predictor = serving.load(settings, f"models:/{name}/{champion.version}")
        # A family's predictor is a FeastPredictor or wraps one (churn adds the attributes kept with the version).
        feast = predictor if isinstance(predictor, FeastPredictor) else getattr(predictor, "feast", None)
        if not isinstance(feast, FeastPredictor):
            continue
        store, service = feast.store, feast.store.get_feature_service(feast.feature_service)
        # The same scoring code with the model's input row already built: the row builder is `_encoded` where the
        # family encodes rows itself (churn's compiled encoding), else `rows`.
        builder = "_encoded" if getattr(predictor, "_fast", None) is not None else "rows"
        x_of = {c: getattr(predictor, builder)([c]) for c in customers[:50]}
        bare = copy.copy(predictor)
        runtime = ServingRuntime(settings, spec)
        requests = {c: serving.request(**{serving.items_field: [c]}) for c in customers[:50]}
        calls = {
            "feast": lambda c: store.get_online_features(features=service, entity_rows=[{"customer_id": c}],
                                                         full_feature_names=False).to_dict(),
            "model": lambda c: (setattr(bare, builder, lambda ids: x_of[c]), serving.batch_infer(bare, [c])),
            "core": lambda c: serving.batch_infer(predictor, np.asarray([c], dtype=object)),
            "handle": lambda c: runtime.handle(requests[c]),
        }
        times = {k: [] for k in calls}
        for i in range(repeats):
            c = customers[i % 50]
            for key, fn in calls.items():
                t0 = time.perf_counter()
                fn(c)
                times[key].append((time.perf_counter() - t0) * 1000)
        p50 = {k: float(np.percentile(v[repeats // 10:], 50)) for k, v in times.items()}
        base = p50["feast"] + p50["model"]
        print(f"| {name} | {p50['feast']:.3f} ms | {p50['model']:.3f} ms | {base:.3f} ms | {p50['core']:.3f} ms | "
              f"{p50['core'] / base:.2f}x | {p50['handle']:.3f} ms |", flush=True)


def http_table(customers: list[str], requests: int, warmup: int) -> None:
    key = secrets.token_urlsafe(16)
    t0 = time.perf_counter()
    with Server("churn", key) as server:
        url = server.url
        print(f"\nserver ready in {time.perf_counter() - t0:.1f}s; {len(customers)} customers; {requests} requests "
              "each\n")
        rng = np.random.default_rng(0)
        print("| customers per request | p50 ms | p99 ms | mean ms | req/s |\n|---|---|---|---|---|")
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
            for batch in (1, 100):
                bodies = [{"customer_ids": list(rng.choice(customers, batch, replace=False))} for _ in range(requests)]
                for body in bodies[:warmup]:
                    client.post(f"{url}/predict", json=body).raise_for_status()
                lat = []
                for body in bodies:
                    t = time.perf_counter()
                    client.post(f"{url}/predict", json=body).raise_for_status()
                    lat.append((time.perf_counter() - t) * 1000)
                lat = np.array(lat)
                print(f"| {batch} | {np.percentile(lat, 50):.2f} | {np.percentile(lat, 99):.2f} | {lat.mean():.2f} | "
                      f"{1000 / lat.mean():.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3000, help="In-process calls per kind.")
    ap.add_argument("--requests", type=int, default=300, help="Timed HTTP requests per batch size.")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--no-http", action="store_true")
    args = ap.parse_args()

    settings = get_settings()
    customers = read_table(current_batch_dir(settings), "orders")["customer_id"].astype(str).unique().tolist()
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; p50 of {args.repeats} interleaved calls\n")
    core_table(settings, customers, args.repeats)
    if not args.no_http:
        http_table(customers, args.requests, args.warmup)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
