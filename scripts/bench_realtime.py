"""Push-to-serve latency of real-time cart features, SQLite (local) vs Redis (production's online store).

One iteration is what a shopper's click costs before the next recommendation can see it: ``POST /events``'s work
(:func:`pipelines.features.realtime.push_cart_event`: read the cart, push the new one) followed by the read the
recommendation service makes (:func:`pipelines.features.realtime.carts`), which must already return the new item.
Both stores run side by side in one process with the same registry and definitions.

Usage: python scripts/bench_realtime.py [--n 500] [--redis 127.0.0.1:6379,db=11]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _store(home: Path, online: dict):
    from feast import FeatureStore, Project, RepoConfig

    from pipelines.features.store import FEATURE_REPO, PROJECT, definitions
    from pipelines.settings import Settings

    settings = Settings(home=home)
    settings.feast_dir.mkdir(parents=True, exist_ok=True)
    config = RepoConfig(project=PROJECT, provider="local", online_store=online, offline_store={"type": "file"},
                        registry={"registry_type": "file", "path": str(settings.feast_dir / "registry.db")},
                        entity_key_serialization_version=3, repo_path=settings.features_dir)
    store = FeatureStore(repo_path=str(FEATURE_REPO), config=config)
    store.apply([Project(name=PROJECT), *definitions(settings)])
    return store


def _measure(store, n: int) -> dict[str, float]:
    from pipelines.features.realtime import CartEvent, carts, push_cart_event

    totals, pushes, reads = [], [], []
    for i in range(n + 20):
        customer = f"bench-{i % 50}"
        event = CartEvent(customer_id=customer, product_id=f"P{i:05d}", event_type="add_to_cart")
        t0 = time.perf_counter()
        push_cart_event(store, event)
        t1 = time.perf_counter()
        seen = carts(store, [customer])[customer]
        t2 = time.perf_counter()
        if event.product_id not in seen:
            raise SystemExit(f"the pushed item is not served: {event.product_id} not in {seen}")
        if i >= 20:  # warm-up: registry cache, connections
            totals.append((t2 - t0) * 1000)
            pushes.append((t1 - t0) * 1000)
            reads.append((t2 - t1) * 1000)

    def q(values: list[float], p: float) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]

    return {"p50": statistics.median(totals), "p99": q(totals, 99), "push_p50": statistics.median(pushes),
            "read_p50": statistics.median(reads), "n": n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--redis", default="127.0.0.1:6379,db=11", help="Redis connection string (a spare db).")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="shopflow-bench-rt-") as tmp:
        sqlite = _store(Path(tmp) / "sqlite", {"type": "sqlite", "path": str(Path(tmp) / "online.db")})
        redis = _store(Path(tmp) / "redis", {"type": "redis", "connection_string": args.redis})
        for name, store in (("sqlite", sqlite), ("redis", redis)):
            rows.append((name, _measure(store, args.n)))
        import redis as redis_client

        host, _, rest = args.redis.partition(",")
        db = int(rest.split("=")[1]) if rest.startswith("db=") else 0
        redis_client.Redis(host=host.split(":")[0], port=int(host.split(":")[1]), db=db).flushdb()
    print("| online store | push-to-serve p50 (ms) | p99 (ms) | push p50 | read p50 | iterations |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['p50']:.2f} | {r['p99']:.2f} | {r['push_p50']:.2f} | {r['read_p50']:.2f} | {r['n']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
