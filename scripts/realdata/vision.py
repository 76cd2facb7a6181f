"""Vision on Fashion-MNIST (Debian's ``dataset-fashion-mnist``): the small-data protocol.

1,000 training pictures per class (a seeded sample of the official training set, 10,000 in all) are written as
labelled picture folders (``images/<class>/<name>.png``) and imported as a user would; ShopFlow validates,
trains (its own holdout, validation and candidate selection inside those 10,000) and serves. The official 10,000
test pictures are then classified over HTTP (``POST /similar`` with the picture, ``predicted_category``) and
scored by accuracy, next to a logistic regression on the raw pixels of the same 10,000 training pictures.
"""

from __future__ import annotations

import base64
import gzip
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from realdata import Protocol, Result, UserPath, deb_member

PACKAGE = "dataset-fashion-mnist"
ROOT = "usr/share/datasets/fashion-mnist"
CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
PER_CLASS = 1000
SEED = 0
TARGET = 0.91


def _idx(path: Path, offset: int) -> np.ndarray:
    return np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8, offset=offset)


def load(cache: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, 28, 28) uint8, labels (N,))`` of the ``train`` or ``t10k`` part (IDX files)."""
    images = _idx(deb_member(cache, PACKAGE, f"{ROOT}/{part}-images-idx3-ubyte.gz"), 16).reshape(-1, 28, 28)
    labels = _idx(deb_member(cache, PACKAGE, f"{ROOT}/{part}-labels-idx1-ubyte.gz"), 8)
    return images, labels


def sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` indices of each class, drawn without replacement with a seeded generator, sorted."""
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
                                   for c in range(len(CLASSES))]))


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_import(folder: Path, images: np.ndarray, labels: np.ndarray, seed: int) -> None:
    """Labelled picture folders; file names are a seeded shuffle, so "newest by id" is a random subset."""
    names = np.random.default_rng(seed).permutation(len(images))
    for i, (img, y) in enumerate(zip(images, labels, strict=True)):
        target = folder / "images" / CLASSES[y] / f"fm{names[i]:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_png(img))


def logreg_pixels(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """The field's classic baseline: a multinomial logistic regression on the raw pixels (scaled to [0, 1])."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(max_iter=1000, random_state=seed)
    lr.fit(x_train.reshape(len(x_train), -1) / 255.0, y_train)
    return lr.predict(x_test.reshape(len(x_test), -1) / 255.0)


def run(user: UserPath, cache: Path, work: Path, per_class: int = PER_CLASS, n_test: int | None = None) -> Result:
    x_all, y_all = load(cache, "train")
    x_test, y_test = load(cache, "t10k")
    if n_test is not None:
        x_test, y_test = x_test[:n_test], y_test[:n_test]
    pick = sample(y_all, per_class, SEED)
    x_train, y_train = x_all[pick], y_all[pick]
    write_import(work / "import", x_train, y_train, SEED)

    user.import_validate(work / "import", historical=True)
    # `validate` accepts the batch as pending; a user then makes it current (features built, switched).
    pending = (user.home / "data" / "PENDING").read_text().strip()
    user.shopflow("data", "use", pending, "--reason", "Fashion-MNIST benchmark import")
    t0 = time.perf_counter()
    summary = user.train("vision")
    train_seconds = time.perf_counter() - t0
    gate = summary.get("gate", {})
    if not gate.get("promoted"):  # score what was trained; the gate's verdict is reported next to it
        user.shopflow("promote", "vision", str(summary["version"]), "--reason",
                      "real-data benchmark scores the trained version")
    bodies = [{"image_base64": base64.b64encode(_png(img)).decode(), "k": 1} for img in x_test]
    with user.serve("vision") as served:
        t1 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=4) as pool:  # a few clients at once, as a shop's backend would
            answers = list(pool.map(lambda body: served.post("/similar", body)["predicted_category"], bodies))
        score_seconds = time.perf_counter() - t1
    pred = np.array([CLASSES.index(a) for a in answers])
    accuracy = float(np.mean(pred == y_test))
    base = float(np.mean(logreg_pixels(x_train, y_train, x_test, SEED) == y_test))

    from sklearn.metrics import f1_score

    return Result(
        family="vision", dataset=f"Fashion-MNIST (Debian {PACKAGE})",
        protocol=f"{per_class:,}/class seeded sample of train imported; official test ({len(y_test):,}) over HTTP",
        metric="accuracy", shopflow=accuracy, baselines={"logreg_raw_pixels": base},
        target=f"accuracy >= {TARGET} and > logistic regression on raw pixels",
        passed=accuracy >= TARGET and accuracy > base,
        extra={"macro_f1": float(f1_score(y_test, pred, average="macro")), "candidate": summary.get("candidate"),
               "holdout_macro_f1 (ShopFlow's own)": float(summary.get("value", float("nan"))),
               "train_seconds": round(train_seconds, 1), "http_seconds": round(score_seconds, 1),
               "gate": gate.get("reason", "?")},
    )


def run_fast(user: UserPath, cache: Path, work: Path) -> Result:
    """The whole user path on 100 pictures per class and the first 1,000 test pictures (CI-sized)."""
    result = run(user, cache, work, per_class=100, n_test=1000)
    result.target = "> logistic regression on raw pixels"
    result.passed = result.shopflow > result.baselines["logreg_raw_pixels"]
    return result


PROTOCOLS = [
    Protocol("vision", "Fashion-MNIST", run),
    # Not in CI: a CNN on 1,000 pictures takes minutes on CPU (churn and LTV are CI's real-data runs).
    Protocol("vision", "Fashion-MNIST (100/class, quick)", run_fast),
]
