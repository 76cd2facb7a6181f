"""Benchmark: per-model training time and peak memory, and how both grow when the data grows 4x.

Usage: python scripts/bench_training.py [--scales 2000 8000] [--models churn ltv ...]

For each scale it generates a seeded shop, validates it, builds and applies the Feast features (all outside the
timed part), then for each model runs prepare + fit + evaluate in a fresh process and reports wall time and the
peak resident memory of that process (`VmHWM`). Prints a Markdown table with the 4x growth ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def prepare_home(home: Path, customers: int) -> None:
    from pipelines.data.generator import generate
    from pipelines.features.build import build_feature_tables
    from pipelines.features.store import apply, materialize
    from pipelines.settings import Settings
    from pipelines.validation.gate import gate

    s = Settings(home=home)
    batch = generate(s.landing_dir, s.truth_dir, customers=customers, seed=42)
    gate(batch.batch_id, s)
    build_feature_tables(s.batches_dir / batch.batch_id, s)
    apply(s)
    materialize(s)


def main() -> None:
    from pipelines.registry import load_registry

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scales", type=int, nargs="+", default=[2000, 8000])
    ap.add_argument("--models", nargs="+", default=list(load_registry()))
    args = ap.parse_args()
    results: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            home = Path(tmp) / f"c{scale}"
            t0 = time.perf_counter()
            prepare_home(home, scale)
            print(f"# {scale} customers: data + validation + features in {time.perf_counter() - t0:.1f}s",
                  file=sys.stderr)
            for name in args.models:
                env = dict(os.environ, SHOPFLOW_HOME=str(home))
                t = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", CHILD, name], env=env, capture_output=True, text=True)
                wall = time.perf_counter() - t
                if proc.returncode != 0:
                    print(f"# {name} @ {scale} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                res = json.loads(proc.stdout.strip().splitlines()[-1]) | {"process_wall": wall}
                results[(name, scale)] = res
                print(f"# {name} @ {scale}: {json.dumps(res)}", file=sys.stderr)
    lo, hi = args.scales[0], args.scales[-1]
    print(f"| model | metric @{lo} | metric @{hi} | train s @{lo} (prepare+fit+evaluate) | train s @{hi} | time x "
          f"| peak MB @{lo} | peak MB @{hi} | memory x |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        a, b = results.get((name, lo)), results.get((name, hi))
        if not a or not b:
            continue
        ta, tb = (a["prepare"] + a["fit"] + a["evaluate"]), (b["prepare"] + b["fit"] + b["evaluate"])
        print(f"| {name} | {a['metric']} {a['value']:.4f} | {b['value']:.4f} | {ta:.1f} (fit {a['fit']:.1f}) "
              f"| {tb:.1f} (fit {b['fit']:.1f}) | {tb / ta:.2f} | {a['peak_mb']:.0f} | {b['peak_mb']:.0f} "
              f"| {b['peak_mb'] / a['peak_mb']:.2f} |")


if __name__ == "__main__":
    main()
