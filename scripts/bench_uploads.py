"""Benchmark: peak memory of a vision worker under parallel largest-allowed image uploads.

Usage: SHOPFLOW_HOME=... python scripts/bench_uploads.py [--parallel 6] [--rounds 3]
Needs a home where `shopflow run` has completed. Starts `shopflow serve vision`, then sends ``--parallel`` uploads
at once, ``--rounds`` times, of images of exactly ``serving.max_image_pixels`` pixels (a flat PNG, a few KB that
inflates to the full bitmap, and a noisy JPEG), and prints each worker's peak RSS (``VmHWM``) before and after.
"""

from __future__ import annotations

import argparse
import io
import math
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_load import Server  # noqa: E402  (sibling script)


def largest_images(max_pixels: int) -> dict[str, bytes]:
    """A flat PNG and a noisy JPEG of the largest allowed square size."""
    from PIL import Image

    side = math.isqrt(max_pixels)
    out = {}
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    out[f"flat PNG {side}x{side}"] = buf.getvalue()
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=25)
    out[f"noisy JPEG {side}x{side}"] = buf.getvalue()
    return out


def peak_rss_mb(pids: list[int]) -> dict[int, float]:
    """``VmHWM`` (peak resident set) of each process, MB."""
    out = {}
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                out[pid] = int(line.split()[1]) / 1024
    return out


def workers(server: Server) -> list[int]:
    """PIDs of the BentoML worker processes (the leaves under the server's process)."""
    from pipelines.supervise import descendants

    procs = descendants(server.proc.pid)
    return [p.pid for p in procs if not p.children()]


def main() -> None:
    from pipelines.settings import get_settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parallel", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    limits = get_settings().serving
    images = largest_images(limits.max_image_pixels)
    key = secrets.token_urlsafe(16)
    with Server("vision", key) as server:
        pids = workers(server)
        url = f"{server.url}/similar/upload"
        headers = {"Authorization": f"Bearer {key}"}

        def upload(data: bytes) -> int:
            return httpx.post(url, files={"image": ("x", data)}, data={"k": "5"}, headers=headers,
                              timeout=300).status_code

        small = io.BytesIO()
        from PIL import Image

        Image.new("RGB", (64, 64)).save(small, format="PNG")
        assert upload(small.getvalue()) == 200  # warm-up: model and code paths loaded
        before = peak_rss_mb(pids)
        print(f"max_image_pixels={limits.max_image_pixels}, max_image_side={limits.max_image_side}, "
              f"max_concurrent_decodes={limits.max_concurrent_decodes}; workers {pids}")
        print("| upload | bytes | parallel x rounds | statuses | seconds | peak RSS before MB | peak RSS after MB |")
        print("|---|---|---|---|---|---|---|")
        for name, data in images.items():
            t0 = time.perf_counter()
            statuses = []
            with ThreadPoolExecutor(args.parallel) as pool:
                for _ in range(args.rounds):
                    statuses += list(pool.map(upload, [data] * args.parallel))
            after = peak_rss_mb(pids)
            print(f"| {name} | {len(data):,} | {args.parallel} x {args.rounds} | "
                  f"{sorted(set(statuses))} | {time.perf_counter() - t0:.1f} | "
                  f"{max(before.values()):.0f} | {max(after.values()):.0f} |", flush=True)


if __name__ == "__main__":
    main()
