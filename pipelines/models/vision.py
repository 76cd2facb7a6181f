"""Vision: the category of a product from its picture, and visually similar products.

A small CNN (plain PyTorch, :mod:`pipelines.vision_lib.model`) classifies product images into categories; its
penultimate embedding (L2-normalised) powers exact cosine similarity search over the catalogue.

Data and split (by product: the holdout's pictures are never trained on):
    * Generator batches: the holdout is *every* real product image of the batch. A catalogue has only 40-80
      pictures, too few to train a CNN, so the training set is ``synthetic_per_category`` fresh pictures per
      category drawn with the generator's own image renderer on a separate seed stream (plus a small synthetic
      validation set for the learning curves). Product pictures are public data; no hidden truth is read.
    * Imported batches (bring your own labelled images, any size, greyscale or RGB): no renderer knows the
      user's look, so within each category the newest products (first event, newest last) are held out
      (``holdout_fraction``, at least one kept for training) and the model trains on the rest.
    In both cases every training epoch sees heavily augmented copies (flips, shifts, zoom, rotation, blur,
    colour jitter, greyscale, noise), class-balanced.

Metrics on the holdout: accuracy, macro-F1 (primary) and recall@10: for each holdout product, the share of its
10 nearest catalogue products (itself excluded) that share its category, averaged (``recall_at_10_ceiling``
is the best achievable value given the category sizes). Baselines: a logistic regression on colour
histograms (classification) and colour-histogram nearest neighbours (retrieval). No oracle: the category label
is known exactly, so an oracle would score 1.0 by construction; ``oracle`` is ``None``.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.serving import batch_values
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedResponse, ServingSpec
from pipelines.utils import pinned_requirements, torch_threads

log = logging.getLogger(__name__)

FEATURE_SERVICE = "vision_v1"
K = 10
"""Neighbours counted by ``recall_at_10``."""


class VisionParams(ModelParams):
    """Hyper-parameters of the vision model (override with ``--set key=value``)."""

    synthetic: Literal["auto", "on", "off"] = Field(
        "auto", description="Train on generator renders: 'auto' = only for generator-made batches whose categories "
                            "the generator knows; 'on' forces it; 'off' trains on the batch's own images.")
    synthetic_per_category: int = Field(128, ge=8, le=5000, description="Rendered training images per category.")
    synthetic_val_per_category: int = Field(16, ge=0, le=1000, description="Rendered validation images per category.")
    holdout_fraction: float = Field(0.3, gt=0, lt=1, description="Share of each category held out (own images only).")
    image_size: int = Field(32, ge=16, le=128, description="Side of the square model input.")
    width: int = Field(16, ge=4, le=128, description="Channels of the first conv stage (then 2x, 4x).")
    convs_per_stage: int = Field(1, ge=1, le=4, description="3x3 convolutions per stage.")
    embedding_dim: int = Field(64, ge=8, le=1024)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int = Field(10, ge=1, le=500)
    samples_per_epoch: int = Field(1024, ge=32, le=1_000_000, description="Augmented images drawn per epoch.")
    batch_size: int = Field(32, ge=4, le=4096)
    learning_rate: float = Field(3e-3, gt=0, le=1, description="Peak of the one-cycle schedule (AdamW).")
    weight_decay: float = Field(5e-4, ge=0)
    label_smoothing: float = Field(0.05, ge=0, lt=1)
    p_grey: float = Field(0.2, ge=0, le=1, description="Probability of a greyscale training copy.")
    histogram_bins: int = Field(4, ge=2, le=16, description="Bins per channel of the colour-histogram baselines.")
    cpu_threads: int = Field(1, ge=1, le=256, description=(
        "torch intra-op threads on CPU. Convolutions this small gain little from more threads and slow down "
        "badly when the cores are shared."))


@dataclass
class VisionData:
    """Training images (already at the model's size) and the holdout/catalogue images as stored in the batch."""

    classes: list[str]
    train_x: np.ndarray
    """``(N, S, S, 3)`` uint8 training images (renders or the batch's own training products)."""
    train_y: np.ndarray
    """Class index of each training image."""
    val_x: np.ndarray | None
    val_y: np.ndarray | None
    holdout_ids: list[str]
    holdout_images: list[np.ndarray]
    """Holdout product images exactly as read from the batch (any size, greyscale or RGB)."""
    holdout_labels: list[str]
    gallery_ids: list[str]
    """Every product with an image: the catalogue searched by the model and by the retrieval metrics."""
    gallery_images: list[np.ndarray]
    gallery_labels: list[str]
    source: str
    """``"synthetic"`` (generator renders) or ``"batch"`` (the batch's own training products)."""
    notes: dict[str, float] = field(default_factory=dict)


def use_synthetic(ctx: DataContext, params: VisionParams, classes: list[str]) -> bool:
    """Whether to train on generator renders: only when they show what the batch's pictures look like."""
    if params.synthetic == "off":
        return False
    from pipelines.vision_lib.synthetic import known_categories

    drawable = set(classes) <= set(known_categories())
    if params.synthetic == "on":
        if not drawable:
            raise ValueError(f"synthetic=on but the generator cannot draw categories "
                             f"{sorted(set(classes) - set(known_categories()))}; use synthetic=off")
        return True
    # A truth folder exists only for generator-made batches; an imported batch may reuse category names for
    # pictures that look nothing like the generator's, so renders would teach the wrong look.
    return ctx.truth_dir is not None and drawable


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
    """Read the catalogue's pictures and build the training set and the by-product holdout (see module doc).

    Raises:
        FileNotFoundError: when a referenced picture is missing from the batch.
        ValueError: with fewer than two categories, or when no category has two products to split.
    """
    from pipelines.data.kinds import require
    from pipelines.vision_lib import synthetic
    from pipelines.vision_lib.images import load_image, stack_same_size

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
    images = [load_image(ctx.batch_dir / f) for f in products["image_file"]]
    ids = products["product_id"].astype(str).tolist()
    labels = products["category"].astype(str).tolist()
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"vision needs images of at least 2 categories, got {classes}")

    notes: dict[str, float] = {}
    if use_synthetic(ctx, params, classes):
        source = "synthetic"
        holdout = np.ones(len(ids), dtype=bool)
        train_imgs, train_labels = synthetic.render(classes, params.synthetic_per_category, params.seed, stream=0)
        val_imgs, val_labels = synthetic.render(classes, params.synthetic_val_per_category, params.seed, stream=1)
    else:
        source = "batch"
        products["first_seen"] = first_seen(ctx, products["product_id"])
        holdout = split_by_product(products, params.holdout_fraction)
        if not holdout.any():
            raise ValueError("vision: no category has two products with images, so nothing can be held out")
        train_imgs = [im for im, h in zip(images, holdout, strict=True) if not h]
        train_labels = [c for c, h in zip(labels, holdout, strict=True) if not h]
        val_imgs, val_labels = [], []

    index = {c: i for i, c in enumerate(classes)}
    train_x = stack_same_size(train_imgs, params.image_size)
    val_x = stack_same_size(val_imgs, params.image_size) if val_imgs else None
    h_idx = np.flatnonzero(holdout)
    # Pixel-identical holdout pictures in training would leak. Renders cannot reproduce a batch picture (own seed
    # stream), so a hit there is a bug; a user's catalogue may legitimately reuse one picture for two products.
    seen = {im.tobytes() for im in train_x}
    holdout_view = stack_same_size([images[i] for i in h_idx], params.image_size)
    notes["train_holdout_duplicates"] = float(sum(im.tobytes() in seen for im in holdout_view))
    if notes["train_holdout_duplicates"]:
        if source == "synthetic":
            raise RuntimeError("vision: a rendered training picture equals a holdout picture")
        log.warning("vision: %d holdout picture(s) also appear in training (shared product pictures); holdout "
                    "metrics are optimistic", int(notes["train_holdout_duplicates"]))
    log.info("vision: %d training images (%s), %d holdout products over %d categories", len(train_x), source,
             h_idx.size, len(classes))
    return VisionData(
        classes=classes,
        train_x=train_x,
        train_y=np.array([index[c] for c in train_labels], dtype=np.int64),
        val_x=val_x,
        val_y=np.array([index[c] for c in val_labels], dtype=np.int64) if val_imgs else None,
        holdout_ids=[ids[i] for i in h_idx],
        holdout_images=[images[i] for i in h_idx],
        holdout_labels=[labels[i] for i in h_idx],
        gallery_ids=ids,
        gallery_images=images,
        gallery_labels=labels,
        source=source,
        notes=notes,
    )


def balanced_indices(y: np.ndarray, n: int, n_classes: int, generator) -> np.ndarray:
    """``n`` training indices with every class equally often, each class cycling through its own images."""
    import torch

    per_class = -(-n // n_classes)
    chunks = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            continue
        reps = -(-per_class // members.size)
        perms = [members[torch.randperm(members.size, generator=generator).numpy()] for _ in range(reps)]
        chunks.append(np.concatenate(perms)[:per_class])
    idx = np.concatenate(chunks)
    return idx[torch.randperm(idx.size, generator=generator).numpy()][:n]


def _to_float(x: np.ndarray):
    import torch

    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0


def _loss_acc(model, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on float images ``x`` (eval mode, no augmentation)."""
    import torch

    logits, _ = model._run(x)
    target = torch.as_tensor(y)
    return (float(torch.nn.functional.cross_entropy(logits, target)),
            float((logits.argmax(1) == target).float().mean()))


def fit(data: VisionData, params: VisionParams):
    """Train the CNN on augmented, class-balanced draws of the training images; index the catalogue."""
    with torch_threads(params.cpu_threads):
        return _fit(data, params)


def _fit(data: VisionData, params: VisionParams):
    import torch

    from pipelines.utils import pick_device
    from pipelines.vision_lib.augment import AugmentConfig, augment
    from pipelines.vision_lib.model import ProductVisionModel

    device = torch.device(pick_device())
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    model = ProductVisionModel(data.classes, params.image_size, params.width, params.embedding_dim, params.dropout,
                               params.convs_per_stage)
    x, y = _to_float(data.train_x), torch.from_numpy(data.train_y)
    model.set_normalisation(x)
    model.to(device)
    cfg = AugmentConfig(p_grey=params.p_grey)
    steps_per_epoch = -(-params.samples_per_epoch // params.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=params.learning_rate,
                                                total_steps=params.epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)
    val = (_to_float(data.val_x), data.val_y) if data.val_x is not None else None
    holdout_x = model.preprocess(data.holdout_images)
    holdout_y = np.array([data.classes.index(c) for c in data.holdout_labels])
    history: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy",
                                                        "holdout_accuracy")}
    for _ in range(params.epochs):
        model.train()
        idx = balanced_indices(data.train_y, params.samples_per_epoch, len(data.classes), gen)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, idx.size, params.batch_size):
            b = torch.from_numpy(idx[start:start + params.batch_size])
            xb = augment(x[b].to(device), cfg, gen)
            yb = y[b].to(device)
            logits, _ = model.encode(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(b)
        history["train_loss"].append(total / seen)
        history["train_accuracy"].append(correct / seen)
        if val is not None:
            v_loss, v_acc = _loss_acc(model, *val)
            history["val_loss"].append(v_loss)
            history["val_accuracy"].append(v_acc)
        # Monitoring only (plotted): nothing is selected or stopped on the holdout.
        history["holdout_accuracy"].append(_loss_acc(model, holdout_x, holdout_y)[1])
        log.debug("vision epoch %d: %s", len(history["train_loss"]), {k: v[-1] for k, v in history.items() if v})
    model.eval()
    model.history = {k: v for k, v in history.items() if v}
    model.set_gallery(data.gallery_ids, data.gallery_images, data.gallery_labels)
    return model


def macro_f1(y_true: list[str], y_pred, classes: list[str]) -> float:
    """Macro-F1 over the categories present in the holdout (absent ones have no defined recall)."""
    from sklearn.metrics import f1_score

    present = [c for c in classes if c in set(y_true)]
    return float(f1_score(list(y_true), list(y_pred), labels=present, average="macro", zero_division=0))


def score(model, data: VisionData) -> float:
    """Holdout macro-F1 of any vision model (e.g. a champion loaded back from the registry)."""
    return macro_f1(data.holdout_labels, model.classify(data.holdout_images), data.classes)


def retrieval_at_k(query_emb: np.ndarray, query_pos: np.ndarray, gallery_emb: np.ndarray,
                   gallery_labels: np.ndarray, k: int = K) -> tuple[float, np.ndarray]:
    """Mean share of each query's ``k`` nearest gallery items (itself excluded) that share its label.

    Args:
        query_emb: ``(Q, D)`` L2-normalised query vectors.
        query_pos: Position of each query in the gallery (its own entry is excluded from its neighbours).
        gallery_emb: ``(G, D)`` L2-normalised gallery vectors.
        gallery_labels: ``(G,)`` labels.
        k: Neighbours per query (fewer when the gallery is smaller).

    Returns:
        ``(mean share, neighbour indices (Q, k'))``.
    """
    sims = query_emb @ gallery_emb.T
    sims[np.arange(len(query_pos)), query_pos] = -np.inf
    k = min(k, gallery_emb.shape[0] - 1)
    nn = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    hits = gallery_labels[nn] == gallery_labels[query_pos][:, None]
    return float(hits.mean()), nn


def retrieval_ceiling(query_pos: np.ndarray, gallery_labels: np.ndarray, k: int = K) -> float:
    """Best achievable :func:`retrieval_at_k`: small categories cannot fill ``k`` neighbours."""
    k = min(k, gallery_labels.size - 1)
    counts = pd.Series(gallery_labels).value_counts()
    same = counts.reindex(gallery_labels[query_pos]).to_numpy() - 1
    return float(np.minimum(same, k).mean() / k)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def evaluate(model, data: VisionData, params: VisionParams) -> Evaluation:
    """Holdout metrics of the CNN and the colour-histogram baselines, robustness checks and figures."""
    with torch_threads(params.cpu_threads):
        return _evaluate(model, data, params)


def _evaluate(model, data: VisionData, params: VisionParams) -> Evaluation:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pipelines.vision_lib import plots
    from pipelines.vision_lib.images import colour_histograms, stack_same_size

    y = data.holdout_labels
    pred = model.classify(data.holdout_images)

    # Baseline: the same training images and the same resized view of the holdout, summarised by colour only.
    hist_train = colour_histograms(data.train_x, params.histogram_bins)
    gallery_view = stack_same_size(data.gallery_images, params.image_size)
    hist_gallery = colour_histograms(gallery_view, params.histogram_bins)
    where = {pid: i for i, pid in enumerate(data.gallery_ids)}
    pos = np.array([where[pid] for pid in data.holdout_ids])
    lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, random_state=params.seed))
    lr.fit(hist_train, np.asarray(data.classes)[data.train_y])
    pred_base = lr.predict(hist_gallery[pos])

    labels = np.asarray(data.gallery_labels)
    emb = model.embed(data.gallery_images)
    r_model, nn_model = retrieval_at_k(emb[pos], pos, emb, labels)
    hist_unit = _unit_rows(hist_gallery)
    r_base, _ = retrieval_at_k(hist_unit[pos], pos, hist_unit, labels)

    # Robustness on the same holdout: a mirrored copy and a greyscale copy of every picture.
    holdout_view = gallery_view[pos]
    flipped = model.classify(holdout_view[:, :, ::-1])
    grey = model.classify(np.round(holdout_view @ np.array([0.299, 0.587, 0.114])).astype(np.uint8))

    metrics = {
        "macro_f1": macro_f1(y, pred, data.classes),
        "accuracy": float(accuracy_score(y, pred)),
        "recall_at_10": r_model,
        "recall_at_10_ceiling": retrieval_ceiling(pos, labels),
        "flip_consistency": float(np.mean(flipped == model.classify(holdout_view))),
        "greyscale_accuracy": float(accuracy_score(y, grey)),
        "baseline_colour_hist_accuracy": float(accuracy_score(y, pred_base)),
        "baseline_colour_hist_nn_recall_at_10": r_base,
        "holdout_products": float(len(y)),
        "gallery_products": float(len(labels)),
        "train_images": float(len(data.train_x)),
        "classes": float(len(data.classes)),
        **data.notes,
    }
    figures = {
        "confusion_matrix.png": plots.confusion(y, {"CNN": pred, "colour histogram + LR": pred_base}, data.classes),
        "learning_curves.png": plots.learning_curves(model.history),
        "neighbours.png": plots.neighbour_grid(gallery_view, labels, pos, nn_model),
        "augmentations.png": plots.augmentation_grid(data.train_x, params),
    }
    return Evaluation(
        metrics=metrics,
        baselines={"colour_hist_logreg": macro_f1(y, pred_base, data.classes)},
        oracle=None,  # the label is known exactly: an oracle would score 1.0 by construction
        figures=figures,
        extra_params={"train_source": data.source, "classes": ",".join(data.classes)},
    )


@contextmanager
def _trusted_pickle():
    """Allow MLflow to unpickle for the duration of one load of our own registry's model.

    The model is logged in pickle format so that its methods (``embed``, ``classify``, ``search``) and state
    (classes, gallery) survive; MLflow 3 refuses pickle loads unless this variable is set.
    """
    key = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"
    old = os.environ.get(key)
    os.environ[key] = "true"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _requirements() -> list[str]:
    """Serving requirements of the pickled model (the same list MLflow would infer, without its slow subprocess)."""
    return pinned_requirements("mlflow", "cloudpickle", "numpy", "pandas", "torch", "shopflow")


def log_model(model, data: VisionData):
    """Log the model (moved to CPU) with ``mlflow.pytorch`` in pickle format, so ``classify``/``embed``/``search``
    and the indexed catalogue come back with it; the signature describes the pyfunc ``forward``."""
    import mlflow
    import torch
    from mlflow.models import infer_signature

    from pipelines.vision_lib.images import stack_same_size

    model = model.cpu().eval()
    example = stack_same_size(data.holdout_images[:2], model.image_size)
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    return mlflow.pytorch.log_model(
        model, name="model", signature=signature, input_example=example, serialization_format="pickle",
        pip_requirements=_requirements(),
        metadata={"classes": model.classes, "image_size": model.image_size, "embedding_dim": model.embedding_dim,
                  "gallery_size": len(model.gallery_ids), "train_source": data.source},
    )


def load_model(uri: str):
    """The logged :class:`~pipelines.vision_lib.model.ProductVisionModel`, in eval mode on ``pick_device()``."""
    import mlflow

    from pipelines.utils import pick_device

    with _trusted_pickle():
        model = mlflow.pytorch.load_model(uri, map_location="cpu")
    return model.to(pick_device()).eval()


# ------------------------------------------------------------------------------------------------ serving

MAX_IMAGE_BYTES = 5_000_000
MAX_IMAGE_PIXELS = 4096 * 4096


class SimilarRequest(ApiModel):
    product_id: str | None = Field(None, min_length=1, max_length=64, description="A catalogue product.")
    image_base64: str | None = Field(None, max_length=MAX_IMAGE_BYTES * 4 // 3 + 4,
                                     description="A PNG/JPEG image, base64-encoded (any size, grey or RGB).")
    k: int = Field(K, ge=1, le=100)


class SimilarProduct(ApiModel):
    product_id: str
    score: float
    category: str


class SimilarResponse(ServedResponse):
    query: str
    predicted_category: str
    similar: list[SimilarProduct]


def decode_image(data: str) -> np.ndarray:
    """Pixels of a base64 PNG/JPEG.

    Raises:
        RequestError: naming ``image_base64`` when it is not base64, not an image, or too large.
    """
    import base64
    import binascii
    import io

    from PIL import Image, UnidentifiedImageError

    from pipelines.serving import RequestError, TooLarge

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("image_base64", "not valid base64") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise TooLarge("image_base64", f"{len(raw)} bytes; at most {MAX_IMAGE_BYTES}")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise TooLarge("image_base64", f"{img.width}x{img.height} pixels is too large")
            img.load()
            return np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise RequestError("image_base64", f"not a readable PNG/JPEG image ({type(exc).__name__})") from None


def serve_predict(model, request: SimilarRequest) -> dict:
    """Nearest catalogue products by the CNN embedding (cosine), for a product id or an image."""
    import torch

    from pipelines.serving import NotFound, RequestError

    if (request.product_id is None) == (request.image_base64 is None):
        raise RequestError("product_id", "give exactly one of product_id or image_base64")
    labels = dict(zip(model.gallery_ids, model.gallery_labels, strict=True))
    if request.product_id is not None:
        if request.product_id not in labels:
            raise NotFound("product_id", f"unknown product {request.product_id!r} (not in the indexed catalogue)")
        row = model.gallery_ids.index(request.product_id)
        sims = (model.gallery[row:row + 1] @ model.gallery.T).cpu()
        sims[0, row] = -float("inf")  # the product itself is not "similar"
        top = torch.topk(sims, k=min(request.k, sims.shape[1] - 1), dim=1)
        ids = [model.gallery_ids[i] for i in top.indices[0].tolist()]
        scores, query, category = top.values[0].tolist(), request.product_id, labels[request.product_id]
    else:
        pixels = decode_image(request.image_base64)
        found, sc = model.search([pixels], k=request.k)
        ids, scores, query = list(found[0]), sc[0].tolist(), "image"
        category = str(model.classify([pixels])[0])
    return {"query": query, "predicted_category": category,
            "similar": [{"product_id": str(i), "score": float(s), "category": labels.get(str(i), "")}
                        for i, s in zip(ids, scores, strict=True)]}


SERVING = ServingSpec(
    request=SimilarRequest, response=SimilarResponse, load=lambda settings, uri: load_model(uri),
    predict=serve_predict, unit_id=lambda r: r.product_id or "image:" + (r.image_base64 or "")[:64],
    route="/similar", upload_field="image_base64",
    example=lambda s: {"product_id": batch_values(s, "products", "product_id", 1)[0], "k": 5},
    unknown={"product_id": "P_DOES_NOT_EXIST", "k": 5},
    summary="Visually similar products for a catalogue product id or an image (base64 or upload).",
)

def data_check(tables) -> list[str]:
    """A bring-your-own batch needs pictures of at least two categories."""
    products = tables["products"]
    n = products.loc[products["image_file"].notna(), "category"].nunique()
    if n < 2:
        return [f"pictures of at least 2 categories needed, the batch has {n} (images or products.image_file)"]
    return []


SPEC = ModelSpec(
    name="vision",
    params=VisionParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="macro_f1",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Small CNN on product images: category classifier whose embedding powers visual similar-item search.",
    serving=SERVING,
    resources={"gpu": True},
    data=FamilyData(("products",), kind="labelled images (`images/<category>/*.png`) or products with "
                    "`image_file`", note="needs pictures of at least 2 categories", check=data_check),
)
