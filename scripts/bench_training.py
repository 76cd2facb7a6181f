"""Benchmark: time and peak memory of the data pipeline and of each model's training, at several data scales.

Usage: python scripts/bench_training.py [--scales 2000 8000 32000] [--models churn ltv ...]

For each scale (customers of a seeded generated shop; 2,000 is the default scale, so 2000 8000 32000 are 1x, 4x
and 16x) it runs the data pipeline in a fresh process, timing each stage (generate, validate, build features,
apply, materialize), then for each model runs prepare + fit + evaluate in a fresh process on that home. Wall time
and the peak resident memory of each process (`VmHWM`) are reported, with the growth from the first to the last
scale, the power-law exponent of time and memory between the last two scales and an extrapolation to 10x and 100x
the first scale (the measured curve carried on: a plan, not a measurement). The load average is printed beside
each measurement: on a shared machine, times are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA_CHILD = r"""
import json, sys, time
from pathlib import Path
from pipelines import steps
from pipelines.data.generator import generate
from pipelines.settings import Settings
s = Settings(home=Path(sys.argv[1])); out = {}
t = time.perf_counter(); batch = generate(s.landing_dir, s.truth_dir, customers=int(sys.argv[2]), seed=42)
out["generate"] = time.perf_counter() - t; t = time.perf_counter()
steps.validate(batch.batch_id, s); out["validate"] = time.perf_counter() - t; t = time.perf_counter()
snapshot = steps.build_features(batch.batch_id, s); out["features"] = time.perf_counter() - t
t = time.perf_counter(); steps.apply_features(s); out["apply"] = time.perf_counter() - t
t = time.perf_counter(); steps.materialize(batch.batch_id, snapshot, s); out["materialize"] = time.perf_counter() - t
steps.publish(batch.batch_id, snapshot, settings=s)
out["peak_mb"] = int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) / 1024
print(json.dumps(out))
"""

CHILD = r"""
import json, sys, time
from pipelines.registry import get_spec
from pipelines.settings import get_settings
from pipelines.training import data_context
from pipelines.utils import seed_everything
name = sys.argv[1]
spec = get_spec(name); params = spec.parse_params({}); seed_everything(params.seed)
ctx = data_context(get_settings())
t0 = time.perf_counter(); data = spec.prepare(ctx, params); t1 = time.perf_counter()
model = spec.fit(data, params); t2 = time.perf_counter()
ev = spec.evaluate(model, data, params); t3 = time.perf_counter()
print(json.dumps({"prepare": t1 - t0, "fit": t2 - t1, "evaluate": t3 - t2,
                  "value": float(ev.metrics[spec.primary_metric]), "metric": spec.primary_metric,
                  # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork/exec.
                  "peak_mb": int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1])
                  / 1024}))
"""


def _load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def _child(code: str, args: list[str], env: dict[str, str]) -> dict | None:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"# {args} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_wall": time.perf_counter() - t}


def _exponent(a: float, b: float, ratio: float) -> float:
    return math.log(b / a) / math.log(ratio) if a > 0 and b > 0 else float("nan")


def _row(name: str, times: list[float], mems: list[float], scales: list[int], extra: str) -> str:
    ratio = scales[-1] / scales[-2]
    bt, bm = _exponent(times[-2], times[-1], ratio), _exponent(mems[-2], mems[-1], ratio)
    t10 = times[-1] * (10 * scales[0] / scales[-1]) ** bt
    t100 = times[-1] * (100 * scales[0] / scales[-1]) ** bt
    # Memory: a fixed part (imports) plus a part that grows with the data; carried on linearly from the last two.
    slope = (mems[-1] - mems[-2]) / (scales[-1] - scales[-2])
    m10, m100 = (mems[-1] + slope * (k * scales[0] - scales[-1]) for k in (10, 100))
    cells = " | ".join(f"{t:.1f}" for t in times) + " | " + " | ".join(f"{m:.0f}" for m in mems)
    return (f"| {name}{extra} | {cells} | {bt:.2f} | {bm:.2f} | {_duration(t10)}, {m10 / 1024:.1f} GB "
            f"| {_duration(t100)}, {m100 / 1024:.1f} GB |")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def main() -> None:
    from pipelines.registry import load_registry

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", type=int, nargs="+", default=[2000, 8000, 32000])
    ap.add_argument("--models", nargs="+", default=list(load_registry()))
    args = ap.parse_args()
    scales = args.scales
    data: dict[int, dict] = {}
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            home = Path(tmp) / f"c{scale}"
            env = dict(os.environ, SHOPFLOW_HOME=str(home))
            print(f"# {scale} customers: data pipeline ({_load()})", file=sys.stderr)
            res = _child(DATA_CHILD, [str(home), str(scale)], env)
            if res is None:
                sys.exit(f"error: the data pipeline failed at {scale} customers")
            data[scale] = res
            print(f"# {scale} data: {json.dumps(res)}", file=sys.stderr)
            for name in args.models:
                res = _child(CHILD, [name], env)
                if res is not None:
                    results[(name, scale)] = res
                    print(f"# {name} @ {scale} ({_load()}): {json.dumps(res)}", file=sys.stderr)
    head = " | ".join(f"s @{n}" for n in scales) + " | " + " | ".join(f"MB @{n}" for n in scales)
    print(f"| step | {head} | time exponent | memory exponent | at {10 * scales[0]} (10x) | at {100 * scales[0]} "
          f"(100x) |")
    print("|---" * (5 + 2 * len(scales)) + "|")
    stages = ("generate", "validate", "features", "apply", "materialize")
    times = [sum(data[n][k] for k in stages) for n in scales]
    parts = ", ".join(f"{k} {data[scales[-1]][k]:.0f}" for k in stages)
    print(_row("data pipeline", times, [data[n]["peak_mb"] for n in scales], scales, f" ({parts} s at {scales[-1]})"))
    for name in args.models:
        got = [results.get((name, n)) for n in scales]
        if not all(got):
            continue
        times = [r["prepare"] + r["fit"] + r["evaluate"] for r in got]
        metric = ", ".join(f"{r['value']:.3f}" for r in got)
        print(_row(f"train {name}", times, [r["peak_mb"] for r in got], scales,
                   f" ({got[0]['metric']} {metric}; fit {got[-1]['fit']:.0f} s at {scales[-1]})"))


if __name__ == "__main__":
    main()
