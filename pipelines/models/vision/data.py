"""The vision data set: the batch's own labelled pictures, split by product into training, validation and holdout."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.data.schema import FamilyData
from pipelines.models.vision.params import VisionParams
from pipelines.spec import DataContext

log = logging.getLogger(__name__)

FEATURE_SERVICE = "vision_v1"


@dataclass
class VisionData:
    """The batch's labelled pictures, split by product into training, validation and holdout.

    Units are pictures: ``<product_id>`` for the catalogue photo (``products.image_file``) and
    ``<product_id>/<view>`` for more views of it (``views/<product_id>/<view>.png``, when the batch has them).
    All views of a product fall in the same part.
    """

    classes: list[str]
    image_size: int
    """Side of the model input (:func:`pipelines.models.vision.params.image_size`)."""
    train_x: np.ndarray
    """``(N, S, S, 3)`` uint8 pictures of the training products, at the model's input size."""
    train_y: np.ndarray
    """Class index of each training picture."""
    val_x: np.ndarray
    """Pictures of the validation products (carved out of the training part; they pick the candidate)."""
    val_y: np.ndarray
    holdout_ids: list[str]
    holdout_images: list[np.ndarray]
    """Holdout pictures exactly as read from the batch (any size, greyscale or RGB)."""
    holdout_labels: list[str]
    gallery_ids: list[str]
    """Every product with a picture (its catalogue photo): what the model searches and the retrieval metric ranks."""
    gallery_images: list[np.ndarray]
    gallery_labels: list[str]
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def fit_x(self) -> np.ndarray:
        """The whole training part (training + validation products): what the chosen candidate is refit on."""
        return np.concatenate([self.train_x, self.val_x]) if len(self.val_x) else self.train_x

    @property
    def fit_y(self) -> np.ndarray:
        return np.concatenate([self.train_y, self.val_y]) if len(self.val_y) else self.train_y

    def all_labelled(self) -> tuple[np.ndarray, np.ndarray]:
        """Every labelled picture (training, validation and holdout) at the model's input size, with class indices:
        what the served model is refit on once the gate has judged the version."""
        from pipelines.models.vision.images import stack_same_size

        if not self.holdout_images:
            return self.fit_x, self.fit_y
        index = {c: i for i, c in enumerate(self.classes)}
        held_y = np.array([index[c] for c in self.holdout_labels], dtype=np.int64)
        return (np.concatenate([self.fit_x, stack_same_size(self.holdout_images, self.image_size)]),
                np.concatenate([self.fit_y, held_y]))


def product_views(batch_dir: Path, product_id: str, image_file: str) -> list[tuple[str, Path]]:
    """``(unit id, path)`` of every picture of a product: its catalogue photo, then ``views/<id>/*`` by name."""
    found = [(product_id, batch_dir / image_file)]
    folder = batch_dir / "views" / product_id
    if folder.is_dir():
        found += [(f"{product_id}/{p.stem}", p) for p in sorted(folder.iterdir()) if p.is_file()]
    return found


def first_seen(ctx: DataContext, product_ids: pd.Series) -> pd.Series:
    """First event time of each product (NaT when it has none, e.g. a brand-new product or no events table)."""
    from pipelines.data.io import BatchFormatError

    try:
        events = ctx.table("events")
    except BatchFormatError:
        return pd.Series(pd.NaT, index=product_ids.index, dtype="datetime64[ns, UTC]")
    first = events.groupby("product_id")["event_ts"].min()
    return product_ids.map(first).astype("datetime64[ns, UTC]")


def split_by_product(products: pd.DataFrame, fraction: float) -> np.ndarray:
    """Holdout mask: within each category, the newest ``fraction`` of products (at least one stays in training).

    Categories with a single product are training-only (a class seen nowhere in training cannot be learnt).
    ``products`` needs ``product_id``, ``category`` and ``first_seen`` (NaT = newest); ties break by id.
    """
    order = products.assign(_never=products["first_seen"].isna()).sort_values(
        ["category", "_never", "first_seen", "product_id"], kind="stable")
    holdout = pd.Series(False, index=products.index)
    for _, group in order.groupby("category", sort=False):
        n = len(group)
        if n < 2:
            continue
        n_out = min(n - 1, max(1, int(round(fraction * n))))
        holdout[group.index[-n_out:]] = True
    return holdout.to_numpy()


def prepare(ctx: DataContext, params: VisionParams) -> VisionData:
    """Read the batch's labelled pictures and split them by product (see :class:`VisionData`).

    Only the batch is read: the generator's hidden truth (``ctx.truth_dir``) plays no part (there is no oracle).

    Raises:
        FileNotFoundError: when a referenced picture is missing from the batch.
        ValueError: with fewer than two categories, or when no category has two products to split.
    """
    from pipelines.data.kinds import require
    from pipelines.models.vision.images import load_image, stack_same_size
    from pipelines.models.vision.params import holdout_fraction, image_size, validation_fraction

    require(ctx, "vision")
    products = ctx.table("products")
    has_image = products["image_file"].notna()
    if not has_image.all():
        log.warning("vision: %d of %d products have no image and are left out", int((~has_image).sum()),
                    len(products))
    products = products[has_image].sort_values("product_id").reset_index(drop=True)
    missing = [f for f in products["image_file"] if not (ctx.batch_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"vision: {len(missing)} product image(s) missing from {ctx.batch_dir}, "
                                f"e.g. {missing[:3]}")
    ids = products["product_id"].astype(str).tolist()
    labels = products["category"].astype(str).tolist()
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"vision needs images of at least 2 categories, got {classes}")
    views = [product_views(ctx.batch_dir, pid, f) for pid, f in zip(ids, products["image_file"], strict=True)]
    n_pictures = sum(len(v) for v in views)

    # By product and by time: the newest products of each category are held out, the next newest validate.
    products["first_seen"] = first_seen(ctx, products["product_id"])
    holdout = split_by_product(products, holdout_fraction(params, n_pictures))
    if not holdout.any():
        raise ValueError("vision: no category has two products with images, so nothing can be held out")
    val = np.zeros(len(products), dtype=bool)
    val[np.flatnonzero(~holdout)] = split_by_product(products[~holdout], validation_fraction(params, n_pictures))

    index = {c: i for i, c in enumerate(classes)}
    parts: dict[str, tuple[list[str], list[np.ndarray], list[str]]] = {
        "train": ([], [], []), "val": ([], [], []), "holdout": ([], [], [])}
    gallery = []
    for i, pics in enumerate(views):
        units, images, labs = parts["holdout" if holdout[i] else "val" if val[i] else "train"]
        for j, (unit, path) in enumerate(pics):
            image = load_image(path)
            units.append(unit)
            images.append(image)
            labs.append(labels[i])
            if j == 0:
                gallery.append(image)  # the catalogue photo

    size = image_size(params, [max(im.shape[:2]) for part in parts.values() for im in part[1]])

    def stacked(name: str) -> tuple[np.ndarray, np.ndarray]:
        _, images, labs = parts[name]
        x = stack_same_size(images, size) if images else np.zeros((0, size, size, 3), np.uint8)
        return x, np.array([index[c] for c in labs], dtype=np.int64)

    train_x, train_y = stacked("train")
    val_x, val_y = stacked("val")
    h_ids, h_images, h_labels = parts["holdout"]
    # Pixel-identical holdout pictures in training would leak; a user's catalogue may legitimately reuse one picture
    # for two products, so this is counted and reported rather than refused.
    seen = {im.tobytes() for im in train_x} | {im.tobytes() for im in val_x}
    dupes = sum(im.tobytes() in seen for im in stack_same_size(h_images, size))
    if dupes:
        log.warning("vision: %d holdout picture(s) also appear in training (shared product pictures); holdout "
                    "metrics are optimistic", dupes)
    log.info("vision: %d training, %d validation, %d holdout pictures of %d products over %d categories",
             len(train_x), len(val_x), len(h_ids), len(ids), len(classes))
    return VisionData(
        classes=classes, image_size=size, train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y,
        holdout_ids=h_ids, holdout_images=h_images, holdout_labels=h_labels,
        gallery_ids=ids, gallery_images=gallery, gallery_labels=labels,
        notes={"train_holdout_duplicates": float(dupes), "pictures": float(n_pictures), "products": float(len(ids))},
    )


def data_check(tables) -> list[str]:
    """A bring-your-own batch needs pictures of at least two categories."""
    products = tables["products"]
    n = products.loc[products["image_file"].notna(), "category"].nunique()
    if n < 2:
        return [f"pictures of at least 2 categories needed, the batch has {n} (images or products.image_file)"]
    return []


NEEDS = FamilyData(("products",), kind="labelled images (`images/<category>/*.png`) or products with "
                   "`image_file`", note="needs pictures of at least 2 categories", check=data_check)
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""
