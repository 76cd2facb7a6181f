"""Holdout evaluation of the registered vision model against the baselines, with robustness checks."""

from __future__ import annotations

import numpy as np

from pipelines.models.vision.data import VisionData
from pipelines.models.vision.metrics import frame_metric, holdout_frame, retrieval_at_k, retrieval_ceiling
from pipelines.models.vision.params import VisionParams, schedule
from pipelines.spec import Evaluation
from pipelines.utils import torch_threads


def evaluate(model, data: VisionData, params: VisionParams) -> Evaluation:
    """Holdout metrics of the registered candidate and of every baseline (refit on the same training part),
    per-picture frames for the gate, robustness checks and figures."""
    with torch_threads(params.cpu_threads):
        return _evaluate(model, data, params)


def _evaluate(model, data: VisionData, params: VisionParams) -> Evaluation:
    from sklearn.metrics import accuracy_score

    from pipelines.models.vision import plots
    from pipelines.models.vision.baselines import BASELINES, fit_baseline
    from pipelines.models.vision.images import colour_histograms, stack_same_size

    frame = holdout_frame(model, data)
    judged = model.holdout_model  # trained without the holdout (the served model may have seen it)
    units, preds = {}, {}
    for name in BASELINES:
        base = model if model.kind == name else fit_baseline(name, data.classes, data.fit_x, data.fit_y, params)
        units[name] = holdout_frame(base, data)
        preds[name] = units[name]["pred"].to_numpy()

    # Retrieval over the catalogue photos: the holdout products' photos query every other product.
    labels = np.asarray(data.gallery_labels)
    held = set(data.holdout_ids)
    pos = np.array([i for i, pid in enumerate(data.gallery_ids) if pid in held])
    emb = judged.embed(data.gallery_images)
    r_model, nn_model = retrieval_at_k(emb[pos], pos, emb, labels)
    gallery_view = stack_same_size(data.gallery_images, data.image_size)
    hist = colour_histograms(gallery_view, params.histogram_bins)
    hist /= np.maximum(np.linalg.norm(hist, axis=1, keepdims=True), 1e-12)
    r_base, _ = retrieval_at_k(hist[pos], pos, hist, labels)

    # Robustness on the same holdout: a mirrored copy and a greyscale copy of every picture.
    holdout_view = stack_same_size(data.holdout_images, data.image_size)
    y = frame["y"].to_numpy()
    flipped = judged.classify(holdout_view[:, :, ::-1])
    grey = judged.classify(np.round(holdout_view @ np.array([0.299, 0.587, 0.114])).astype(np.uint8))
    plan = schedule(params, len(data.fit_x))
    metrics = {
        "macro_f1": frame_metric(frame),
        "accuracy": float(accuracy_score(y, frame["pred"])),
        "recall_at_10": r_model,
        "recall_at_10_ceiling": retrieval_ceiling(pos, labels),
        "flip_consistency": float(np.mean(flipped == frame["pred"].to_numpy())),
        "greyscale_accuracy": float(accuracy_score(y, grey)),
        **{f"baseline_{k}_accuracy": float(accuracy_score(y, p)) for k, p in preds.items()},
        "baseline_colour_hist_nn_recall_at_10": r_base,
        "holdout_pictures": float(len(y)),
        "train_pictures": float(len(data.fit_x)),
        "served_train_pictures": float(getattr(model, "train_pictures", len(data.fit_x))),
        "validation_pictures": float(len(data.val_x)),
        "classes": float(len(data.classes)),
        **data.notes,
    }
    figures = {
        "confusion_matrix.png": plots.confusion(y, {f"registered ({model.kind})": frame["pred"].to_numpy(),
                                                    **preds}, data.classes),
        "neighbours.png": plots.neighbour_grid(gallery_view, labels, pos, nn_model),
        "augmentations.png": plots.augmentation_grid(data.fit_x, params, plan.augment, plan.p_erase),
    }
    if model.history:
        figures["learning_curves.png"] = plots.learning_curves(model.history)
    return Evaluation(
        metrics=metrics,
        baselines={k: frame_metric(f) for k, f in units.items()},
        oracle=None,  # the label is known exactly: an oracle would score 1.0 by construction
        figures=figures,
        extra_params={"classes": ",".join(data.classes), "resolved_width": plan.width,
                      "resolved_epochs": plan.epochs, "resolved_batch_size": plan.batch_size,
                      "resolved_samples_per_epoch": plan.samples_per_epoch, "resolved_augment": plan.augment,
                      "resolved_p_erase": plan.p_erase},
        units=units,
        candidate=model.kind,
        selection=dict(getattr(model, "selection", {})),
    )
