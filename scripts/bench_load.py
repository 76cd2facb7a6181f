"""Benchmark: sustained load on every family's Bento beside a bare uvicorn app over the same core, batching, ANN.

Usage: SHOPFLOW_HOME=... python scripts/bench_load.py [--seconds 20] [--clients 16] [--family churn ...]
Needs a home where `shopflow run` has completed. Prints:

1. Sustained load, side by side in one run, for each served family: the real ``shopflow serve`` (BentoML, default
   workers, guard, metrics) and ``scripts/bare_app.py`` (plain uvicorn, same workers, the same ``ServingRuntime``
   core, no auth, metrics or batching). ``--clients`` keep-alive connections, one id per request rotating over the
   shop's customers (or the family's example request), generated with ``wrk`` when installed (``apt install
   wrk``; it costs the shared CPUs far less than a Python client), else with asyncio httpx clients. Columns:
   requests, errors (non-2xx or socket errors), req/s, p50/p99 latency, and the server's CPU time per request.
2. Adaptive batching on vs off (churn, same load).
3. Batched vs single-row model calls (in process).
4. ANN (faiss HNSW, the recommender's index settings) vs exact top-10 retrieval, on the trained catalogue and on
   100,000 synthetic items.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from pipelines.data.io import read_table
from pipelines.features.snapshot import current_batch_dir
from pipelines.settings import get_settings

SCRIPTS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``shopflow serve MODEL`` (or, with ``bare=True``, ``scripts/bare_app.py``) in a subprocess, stopped on exit."""

    def __init__(self, model: str, key: str, bare: bool = False, **env: str) -> None:
        from model_serving.launcher import bentoml_config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if bare:
            workers = bentoml_config(get_settings())["workers"]
            cmd = [sys.executable, str(SCRIPTS / "bare_app.py"), "--port", str(self.port), "--workers", str(workers)]
            env = {**env, "BARE_MODEL": model}
        else:
            cmd = [str(Path(sys.executable).parent / "shopflow"), "serve", model, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, env=dict(os.environ, SHOPFLOW_API_KEY=key, **env),
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

    def cpu_seconds(self) -> float:
        """User + system CPU of the server's whole process tree so far (live processes)."""
        import psutil

        total = 0.0
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.Error:
            return total
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:
                pass
        return total


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


def _wrk(url: str, route: str, bodies: list[dict], key: str, seconds: float, clients: int) -> dict:
    """``wrk`` with a Lua script cycling through ``bodies``."""
    script = Path(tempfile.mkdtemp(prefix="shopflow-wrk-")) / "bodies.lua"
    quoted = ",".join("[==[" + json.dumps(b) + "]==]" for b in bodies[:500])
    script.write_text(f"local bodies = {{{quoted}}}\nlocal i = 0\nwrk.method = 'POST'\n"
                      "wrk.headers['Content-Type'] = 'application/json'\n"
                      f"wrk.headers['Authorization'] = 'Bearer {key}'\n"
                      "request = function()\n  i = i + 1\n"
                      f"  return wrk.format(nil, '{route}', nil, bodies[(i % #bodies) + 1])\nend\n")
    try:
        cmd = ["wrk", "--timeout", "30s", f"-t{min(2, clients)}", f"-c{clients}", f"-d{max(1, round(seconds))}s",
               "--latency", "-s", str(script), url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        shutil.rmtree(script.parent, ignore_errors=True)

    def ms(label: str) -> float:
        value, unit = re.search(rf"\n\s+{label}%\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1000.0}[unit]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"requests": requests, "errors": errors, "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms("50"), "p99": ms("99")}


def load(server: Server, route, bodies, key, seconds, clients) -> dict:
    """Warm up, then ``seconds`` of load; adds the server's CPU milliseconds per request."""
    use_wrk = shutil.which("wrk") is not None
    if use_wrk:
        _wrk(server.url, route, bodies, key, 3, clients)
    else:
        asyncio.run(_load(server.url, route, bodies[:50], key, 3, clients))
    cpu0 = server.cpu_seconds()
    if use_wrk:
        result = _wrk(server.url, route, bodies, key, seconds, clients)
    else:
        result = asyncio.run(_load(server.url, route, bodies, key, seconds, clients))
    result["cpu_ms"] = (server.cpu_seconds() - cpu0) * 1000 / max(result["requests"], 1)
    return result


def row(name: str, r: dict) -> str:
    return (f"| {name} | {r['requests']} | {r['errors']} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | "
            f"{r.get('cpu_ms', float('nan')):.2f} |")


def timeit(fn, repeat: int = 5) -> float:
    """Best of ``repeat`` wall times of ``fn()``, seconds."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def family_bodies(settings, spec, customers: list[str]) -> list[dict]:
    """Request bodies for a family's load: one customer per request where the family takes customers."""
    serving = spec.serving
    example = serving.example(settings)
    if serving.items_field:
        return [{serving.items_field: [c]} for c in customers]
    if "customer_id" in example:
        return [{**example, "customer_id": c} for c in customers]
    return [example]


def main() -> None:
    from pipelines.registry import load_registry

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="Duration of each sustained-load run.")
    ap.add_argument("--ab-seconds", type=float, default=20.0, help="Duration of each batching on/off run.")
    ap.add_argument("--clients", type=int, default=16, help="Concurrent clients (connections).")
    ap.add_argument("--family", action="append", help="Only these families in the load table (repeatable).")
    ap.add_argument("--skip", action="append", default=[], choices=["load", "batching", "calls", "ann"])
    args = ap.parse_args()

    settings = get_settings()
    batch = current_batch_dir(settings)
    if batch is None:
        raise SystemExit("no validated batch: run `shopflow run` first")
    customers = read_table(batch, "orders")["customer_id"].astype(str).unique().tolist()
    rng = np.random.default_rng(0)
    customers = [customers[i] for i in rng.permutation(len(customers))]
    key = secrets.token_urlsafe(16)
    from model_serving.launcher import bentoml_config

    print(f"{len(customers)} customers, {args.clients} concurrent clients, {os.cpu_count()} CPUs, "
          f"{bentoml_config(settings)['workers']} workers, load generator: "
          f"{'wrk' if shutil.which('wrk') else 'asyncio httpx'}; load average {os.getloadavg()[0]:.2f}\n")

    registry = load_registry()
    families = args.family or [n for n, s in registry.items() if s.serving is not None]
    if "load" not in args.skip:
        print("## Sustained load: BentoML service beside a bare uvicorn app over the same core\n")
        print("| family, server | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/request |\n"
              "|---|---|---|---|---|---|---|")
        for name in families:
            spec = registry[name]
            bodies = family_bodies(settings, spec, customers)
            for bare, label in ((False, "shopflow serve (BentoML)"), (True, "bare uvicorn app")):
                with Server(name, key, bare=bare) as s:
                    result = load(s, spec.serving.route, bodies, key, args.seconds, args.clients)
                print(row(f"{name} `{spec.serving.route}`, {label}", result) +
                      f" <!-- load {os.getloadavg()[0]:.2f} -->", flush=True)

    if "batching" not in args.skip:
        print("\n## Adaptive batching on vs off (churn, same load)\n")
        print("| batching | requests | errors | req/s | p50 ms | p99 ms | server CPU ms/request |\n"
              "|---|---|---|---|---|---|---|")
        bodies = family_bodies(settings, registry["churn"], customers)
        for flag in ("true", "false"):
            with Server("churn", key, SHOPFLOW_SERVING__BATCHING=flag) as s:
                print(row(flag, load(s, "/predict", bodies, key, args.ab_seconds, args.clients)), flush=True)

    from pipelines import tracking

    client = tracking.configure(settings)
    if "calls" not in args.skip:
        calls_table(settings, client, customers)
    if "ann" not in args.skip:
        ann_table(settings, client, customers)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


def calls_table(settings, client, customers: list[str]) -> None:
    from pipelines import tracking
    from pipelines.registry import get_spec

    print("\n## Batched vs single-row model calls (in process)\n")
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


def ann_table(settings, client, customers: list[str]) -> None:
    """The recommender's own index settings (``RecParams`` defaults, ``EF_CONSTRUCTION``) on the trained catalogue
    and on 100,000 synthetic items of the same dimension.

    Both searches run on one thread (faiss's OpenMP and numpy's BLAS): a served request is one query on one core,
    and multi-threaded timings on a shared two-core machine measure the neighbours' load more than the methods.
    """
    import faiss
    from threadpoolctl import threadpool_limits

    faiss.omp_set_num_threads(1)
    threadpool_limits(1)

    from pipelines import tracking
    from pipelines.registry import get_spec
    from pipelines.models.recommendation.mf import EF_CONSTRUCTION

    spec = get_spec("recommendation")
    params = spec.parse_params()
    rv = tracking.version_by_alias(client, "recommendation", "champion").version
    rec = spec.load_model(f"models:/recommendation/{rv}").served  # the refitted recommender serving answers from
    rows = np.arange(min(1000, len(rec.user_ids)))
    print("\n## ANN (faiss HNSW) vs exact top-10 retrieval (in process)\n")
    print(f"index: M {params.hnsw_m}, efConstruction {EF_CONSTRUCTION}, efSearch {params.ef_search} "
          f"(the loaded champion was built with efSearch {rec.ef_search})\n")
    queries = rec.user_vectors(rows).astype("float32")
    items = rec.item_vectors().astype("float32")
    k = 10

    def recall(found, exact_ids):
        return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(found, exact_ids)]))

    def exact(q, catalogue):
        s = q @ catalogue.T
        return np.argpartition(-s, k, axis=1)[:, :k]

    t_ann = timeit(lambda: rec.ann_search(queries, k))
    t_exact = timeit(lambda: exact(queries, items))
    r = recall(rec.ann_search(queries, k)[0], exact(queries, items))
    print("| method | queries | catalogue | ms total | us/query | recall@10 vs exact |\n|---|---|---|---|---|---|")
    print(f"| exact (numpy dot + argpartition), trained | {len(queries)} | {len(items)} | {t_exact * 1000:.2f} | "
          f"{t_exact / len(queries) * 1e6:.1f} | 1.000 |")
    print(f"| HNSW, trained | {len(queries)} | {len(items)} | {t_ann * 1000:.2f} | "
          f"{t_ann / len(queries) * 1e6:.1f} | {r:.3f} |")

    big, dim, n_q = 100_000, items.shape[1], 1000
    gen = np.random.default_rng(0)
    catalogue = gen.standard_normal((big, dim)).astype("float32")
    qs = gen.standard_normal((n_q, dim)).astype("float32")
    index = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    t = time.perf_counter()
    index.add(catalogue)
    build = time.perf_counter() - t
    index.hnsw.efSearch = max(params.ef_search, k)
    r_big = recall(index.search(qs, k)[1], exact(qs, catalogue))
    t_exact = timeit(lambda: exact(qs, catalogue), repeat=2)
    t_ann = timeit(lambda: index.search(qs, k), repeat=3)
    print(f"| exact, synthetic | {n_q} | {big} | {t_exact * 1000:.1f} | {t_exact / n_q * 1e6:.1f} | 1.000 |")
    print(f"| HNSW, synthetic | {n_q} | {big} | {t_ann * 1000:.1f} | {t_ann / n_q * 1e6:.1f} | {r_big:.3f} |")
    print(f"\nsynthetic catalogue ({dim}-d Gaussian vectors, the hard case for HNSW): build {build:.1f} s (one "
          f"thread); ANN {t_exact / t_ann:.1f}x faster than exact at recall@10 {r_big:.3f}")


if __name__ == "__main__":
    main()
