"""Benchmark: sustained load and the serving speed-ups, measured side by side in one run.

Usage: SHOPFLOW_HOME=... python scripts/bench_load.py [--seconds 60] [--clients 16]
Needs a home where `shopflow run` has completed. Prints:

1. Sustained load on the churn and recommendation Bentos (``--clients`` concurrent clients, one customer per
   request, ``--seconds`` each): requests, errors, throughput, p50/p99 latency.
2. Adaptive batching on vs off: the same churn load against a service started with
   ``SHOPFLOW_SERVING__BATCHING=true`` and ``false``.
3. Batched vs single-row model calls (in process): churn XGBoost and the recommender's user scoring.
4. ANN (faiss HNSW) vs exact top-10 retrieval (in process): latency per query and recall of the ANN.
5. BentoML overhead: the same single-customer request through HTTP vs a bare in-process call of the runtime.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from pipelines.data.io import read_table
from pipelines.settings import get_settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``shopflow serve MODEL`` in a subprocess, stopped on exit."""

    def __init__(self, model: str, key: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(Path(sys.executable).parent / "shopflow"), "serve", model, "--port",
                                      str(self.port)], env=dict(os.environ, SHOPFLOW_API_KEY=key, **env),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        t0 = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.perf_counter() - t0 > 240:
                raise SystemExit(f"{model} server did not start")
            time.sleep(0.5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)


async def _load(url: str, route: str, bodies: list[dict], key: str, seconds: float, clients: int) -> dict:
    """``clients`` concurrent clients, each sending the next body as soon as its previous answer came back."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            body = bodies[next(counter) % len(bodies)]
            t = time.perf_counter()
            try:
                r = await http.post(url + route, json=body)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            lat.append((time.perf_counter() - t) * 1000)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers={"Authorization": f"Bearer {key}"}) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - t0
    a = np.array(lat)
    return {"requests": len(a), "errors": errors, "rps": len(a) / wall, "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99))}


def load(url, route, bodies, key, seconds, clients) -> dict:
    asyncio.run(_load(url, route, bodies[:50], key, 3, clients))  # warm-up (model, feature store, batcher)
    return asyncio.run(_load(url, route, bodies, key, seconds, clients))


def row(name: str, r: dict) -> str:
    return (f"| {name} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} |")


def timeit(fn, repeat: int = 5) -> float:
    """Best of ``repeat`` wall times of ``fn()``, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="Duration of each sustained-load run.")
    ap.add_argument("--ab-seconds", type=float, default=30.0, help="Duration of each batching on/off run.")
    ap.add_argument("--clients", type=int, default=16, help="Concurrent clients.")
    args = ap.parse_args()

    settings = get_settings()
    batch = settings.current_batch_dir()
    if batch is None:
        raise SystemExit("no validated batch: run `shopflow run` first")
    customers = read_table(batch, "orders")["customer_id"].astype(str).unique().tolist()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(customers))
    churn_bodies = [{"customer_ids": [customers[i]]} for i in order]
    rec_bodies = [{"customer_id": customers[i], "k": 10} for i in order]
    key = secrets.token_urlsafe(16)
    print(f"{len(customers)} customers, {args.clients} concurrent clients, {os.cpu_count()} CPUs\n")

    print("## Sustained load (one customer per request)\n")
    print("| service | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    with Server("churn", key) as s:
        print(row(f"churn /predict, {args.seconds:.0f} s", load(s.url, "/predict", churn_bodies, key,
                                                               args.seconds, args.clients)), flush=True)
    with Server("recommendation", key) as s:
        print(row(f"recommendation /recommend, {args.seconds:.0f} s",
                  load(s.url, "/recommend", rec_bodies, key, args.seconds, args.clients)), flush=True)

    print("\n## Adaptive batching on vs off (churn, same load)\n")
    print("| batching | requests | errors | req/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    results = {}
    for flag in ("true", "false"):
        with Server("churn", key, SHOPFLOW_SERVING__BATCHING=flag) as s:
            results[flag] = load(s.url, "/predict", churn_bodies, key, args.ab_seconds, args.clients)
            print(row(flag, results[flag]), flush=True)
    print(f"\nthroughput ratio on/off: {results['true']['rps'] / results['false']['rps']:.2f}x")

    print("\n## Batched vs single-row model calls (in process)\n")
    from pipelines import tracking
    from pipelines.registry import get_spec

    client = tracking.configure(settings)
    churn_spec = get_spec("churn")
    v = tracking.version_by_alias(client, "churn", "champion").version
    predictor = churn_spec.serving.load(settings, f"models:/churn/{v}")
    x, _ = predictor.rows(customers[:1000])
    model = predictor.model
    one_call = timeit(lambda: model.predict_proba(x))
    row_calls = timeit(lambda: [model.predict_proba(x[i:i + 1]) for i in range(len(x))], repeat=2)
    print("| model call | rows | one batched call ms | row-by-row ms | speed-up |\n|---|---|---|---|---|")
    print(f"| churn XGBoost | {len(x)} | {one_call * 1000:.1f} | {row_calls * 1000:.1f} | "
          f"{row_calls / one_call:.0f}x |")
    ids = np.asarray(customers[:200], dtype=object)
    infer = churn_spec.serving.batch_infer
    one_call = timeit(lambda: infer(predictor, ids), repeat=3)
    row_calls = timeit(lambda: [infer(predictor, ids[i:i + 1]) for i in range(len(ids))], repeat=1)
    print(f"| churn Feast online read + XGBoost (the batched serving core) | {len(ids)} | {one_call * 1000:.1f} | "
          f"{row_calls * 1000:.1f} | {row_calls / one_call:.0f}x |")
    rec_spec = get_spec("recommendation")
    rv = tracking.version_by_alias(client, "recommendation", "champion").version
    rec = rec_spec.load_model(f"models:/recommendation/{rv}")
    rows = np.arange(min(1000, len(rec.user_ids)))
    one_call = timeit(lambda: rec.scores(rows))
    row_calls = timeit(lambda: [rec.scores(rows[i:i + 1]) for i in range(len(rows))], repeat=2)
    print(f"| recommendation scores | {len(rows)} | {one_call * 1000:.1f} | {row_calls * 1000:.1f} | "
          f"{row_calls / one_call:.0f}x |")

    print("\n## ANN (faiss HNSW) vs exact top-10 retrieval (in process)\n")
    queries = rec.user_vectors(rows).astype("float32")
    items = rec.item_vectors().astype("float32")
    k = 10

    def exact():
        s = queries @ items.T
        return np.argpartition(-s, k, axis=1)[:, :k]

    ann_ids = rec.ann_search(queries, k)[0]
    ex_ids = exact()
    recall = np.mean([len(set(a) & set(e)) / k for a, e in zip(ann_ids, ex_ids)])
    t_ann = timeit(lambda: rec.ann_search(queries, k))
    t_exact = timeit(exact)
    print("| method | queries | catalogue | ms total | us/query | recall@10 vs exact |\n|---|---|---|---|---|---|")
    print(f"| exact (numpy dot + argpartition) | {len(queries)} | {len(items)} | {t_exact * 1000:.2f} | "
          f"{t_exact / len(queries) * 1e6:.1f} | 1.000 |")
    print(f"| ANN (faiss HNSW) | {len(queries)} | {len(items)} | {t_ann * 1000:.2f} | "
          f"{t_ann / len(queries) * 1e6:.1f} | {recall:.3f} |")

    import faiss

    big, dim, n_q = 100_000, items.shape[1], 1000
    gen = np.random.default_rng(0)
    catalogue = gen.standard_normal((big, dim)).astype("float32")
    qs = gen.standard_normal((n_q, dim)).astype("float32")
    index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    t = time.perf_counter()
    index.add(catalogue)
    build = time.perf_counter() - t
    index.hnsw.efSearch = 64

    def exact_big():
        s = qs @ catalogue.T
        return np.argpartition(-s, k, axis=1)[:, :k]

    ann_big = index.search(qs, k)[1]
    ex_big = exact_big()
    recall_big = np.mean([len(set(a) & set(e)) / k for a, e in zip(ann_big, ex_big)])
    t_exact = timeit(exact_big, repeat=2)
    t_ann = timeit(lambda: index.search(qs, k), repeat=3)
    print(f"| exact, synthetic catalogue | {n_q} | {big} | {t_exact * 1000:.1f} | {t_exact / n_q * 1e6:.1f} | 1.000 |")
    print(f"| ANN (same HNSW settings), synthetic | {n_q} | {big} | {t_ann * 1000:.1f} | "
          f"{t_ann / n_q * 1e6:.1f} | {recall_big:.3f} |")
    print(f"\nsynthetic catalogue: HNSW build {build:.1f} s; ANN speed-up {t_exact / t_ann:.1f}x at recall "
          f"{recall_big:.3f} (random vectors are the hard case for HNSW)")

    print("\n## BentoML overhead (one customer, sequential requests)\n")
    from pipelines.serving import ServingRuntime

    runtime = ServingRuntime(settings, churn_spec)
    req = churn_spec.serving.request(customer_ids=[customers[0]])
    bare = []
    for _ in range(300):
        t = time.perf_counter()
        runtime.handle(req)
        bare.append((time.perf_counter() - t) * 1000)
    with Server("churn", key, SHOPFLOW_SERVING__BATCHING="false") as s, httpx.Client(
            timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(30):
            http.post(s.url + "/predict", json={"customer_ids": [customers[0]]}).raise_for_status()
        served = []
        for _ in range(300):
            t = time.perf_counter()
            http.post(s.url + "/predict", json={"customer_ids": [customers[0]]}).raise_for_status()
            served.append((time.perf_counter() - t) * 1000)
    b50, s50 = np.percentile(bare, 50), np.percentile(served, 50)
    print("| path | p50 ms | p99 ms |\n|---|---|---|")
    print(f"| bare in-process call (features + model) | {b50:.2f} | {np.percentile(bare, 99):.2f} |")
    print(f"| HTTP through BentoML | {s50:.2f} | {np.percentile(served, 99):.2f} |")
    print(f"\nBentoML + HTTP overhead at p50: {s50 - b50:.2f} ms ({s50 / b50:.2f}x the bare call)")


if __name__ == "__main__":
    main()
