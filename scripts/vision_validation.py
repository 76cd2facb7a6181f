"""Validation-only check of vision training settings on Fashion-MNIST; never reads the official test pictures.

The real-data benchmark's seeded sample (1,000 training pictures per class, ``scripts/realdata/vision.py``) is the
user's data. The CNN trains on 8,500 of them (what ShopFlow keeps after its ~1,500-picture holdout) and is scored
on 10,000 *other* pictures of the official training set; with ``"refit_all": true`` it then continues warm on all
10,000 (as ``refit_on_all`` does) and is scored again. Prints one JSON line.

    nice .venv/bin/python scripts/vision_validation.py '{"width": 32, "epochs": 60, "refit_all": true}'

Keys other than ``refit_all`` and ``n_fit`` are ``VisionParams``; one CPU thread per run (run two side by side).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata.vision import CLASSES, SEED, load, sample  # noqa: E402

from pipelines.models.vision.params import VisionParams  # noqa: E402
from pipelines.models.vision.train import train  # noqa: E402
from pipelines.utils import torch_threads  # noqa: E402


def main(argv: list[str]) -> None:
    import argparse

    from pydantic import ValidationError

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="?", default="{}", help="JSON object of VisionParams, refit_all, n_fit")
    args = parser.parse_args(argv)
    try:
        cfg = json.loads(args.settings)
        if not isinstance(cfg, dict):
            raise ValueError("settings must be a JSON object")
        refit = bool(cfg.pop("refit_all", False))
        n_fit = int(cfg.pop("n_fit", 8500))
        params = VisionParams(**cfg)
    except ValidationError as exc:
        parser.error("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    except ValueError as exc:
        parser.error(f"settings: {exc}")
    cache = Path.home() / ".cache" / "shopflow-bench"
    x_all, y_all = load(cache, "train")
    pick = sample(y_all, 1000, SEED)
    rest = np.setdiff1d(np.arange(len(y_all)), pick)
    scored = np.random.default_rng(1).choice(rest, 10_000, replace=False)

    def rgb(a: np.ndarray) -> np.ndarray:
        return np.repeat(a[..., None], 3, axis=-1)  # what the importer makes of a greyscale PNG

    x, y = rgb(x_all[pick]), y_all[pick].astype(np.int64)
    fit_idx = np.random.default_rng(2).permutation(len(x))[:n_fit]
    x_eval, y_eval = rgb(x_all[scored]), y_all[scored]

    def accuracy(model) -> float:
        return float(np.mean(np.array([CLASSES.index(c) for c in model.classify(x_eval)]) == y_eval))

    t0 = time.time()
    with torch_threads(1):
        model = train(list(CLASSES), x[fit_idx], y[fit_idx], params)
        t1 = time.time()
        out = {"cfg": cfg, "acc": accuracy(model), "train_s": round(t1 - t0)}
        if refit:
            out["acc_refit_all"] = accuracy(train(list(CLASSES), x, y, params, warm=model))
            out["refit_s"] = round(time.time() - t1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
