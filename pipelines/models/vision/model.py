"""The vision model: pick the candidate on validation, refit it, index the catalogue; score; the MLflow flavor."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager

import numpy as np

from pipelines.models.vision.data import VisionData
from pipelines.models.vision.metrics import macro_f1
from pipelines.models.vision.params import VisionParams
from pipelines.utils import pinned_requirements, torch_threads

log = logging.getLogger(__name__)

CANDIDATES = ("model", "colour_hist_logreg", "pixel_logreg")
"""The CNN and the baselines, in the order ties are broken (the CNN first)."""


def fit_candidate(name: str, classes: list[str], x: np.ndarray, y: np.ndarray, params: VisionParams,
                  val: tuple[np.ndarray, np.ndarray] | None = None, warm=None):
    """Train candidate ``name`` (``"model"`` = the CNN, else a baseline) on uint8 images ``x`` and class indices;
    ``warm`` continues a CNN already trained (see :func:`~pipelines.models.vision.train.train`)."""
    if name == "model":
        from pipelines.models.vision.train import train

        return train(classes, x, y, params, val, warm=warm)
    from pipelines.models.vision.baselines import fit_baseline

    return fit_baseline(name, classes, x, y, params)


def fit(data: VisionData, params: VisionParams):
    """Score every candidate on the validation products, refit the winner on the whole training part and index the
    catalogue. The returned model carries ``selection`` (validation macro-F1 per candidate) and ``kind``.

    With ``refit_on_all`` (the default) the returned, served model is that refit continued on every labelled picture,
    holdout included, as in the field's protocol of training the final model on all the data; it carries the refit
    on the training part as ``evaluated``, which is what the holdout, the gate and the reports judge
    (:attr:`~pipelines.models.vision.classifier.ImageModel.holdout_model`)."""
    with torch_threads(params.cpu_threads):
        return _fit(data, params)


def _fit(data: VisionData, params: VisionParams):
    from pipelines.promotion import select_candidate

    scores: dict[str, float] = {}
    history: dict[str, list[float]] = {}
    trials = {}
    val_labels = [data.classes[i] for i in data.val_y]
    if len(data.val_x):
        for name in CANDIDATES:
            trials[name] = fit_candidate(name, data.classes, data.train_x, data.train_y, params,
                                         (data.val_x, data.val_y))
            scores[name] = macro_f1(val_labels, trials[name].classify(data.val_x), data.classes)
        history = dict(trials["model"].history)
        winner = select_candidate(scores, higher_is_better=True)
    else:  # too few products to carve a validation set out of training: the CNN, unselected
        log.warning("vision: no category has enough products for a validation split; keeping the CNN unselected")
        winner = "model"
    log.info("vision: validation macro-F1 %s -> %s", {k: round(v, 4) for k, v in scores.items()}, winner)
    # The winner is refit on the whole training part; a CNN continues from its selection run (warm: a quarter of the
    # epochs instead of all of them again), a baseline is fit afresh (cheap).
    model = fit_candidate(winner, data.classes, data.fit_x, data.fit_y, params, warm=trials.get("model")
                          if winner == "model" else None)
    if winner == "model":  # the refit has no validation set left: keep the selection run's curves beside its own
        model.history = {**{f"selection_{k}": v for k, v in history.items()}, **{f"refit_{k}": v for k, v in
                                                                                   model.history.items()}}
    model.selection = scores
    model.train_pictures = len(data.fit_x)
    if params.refit_on_all and data.holdout_images:
        model = _refit_on_all(model, winner, data, params)
    model.set_gallery(data.gallery_ids, data.gallery_images, data.gallery_labels)
    return model


def _refit_on_all(evaluated, winner: str, data: VisionData, params: VisionParams):
    """The served model: the evaluated one continued on every labelled picture (a CNN warm, from a copy, so the
    evaluated model stays as the gate judges it; a baseline fit afresh); ``evaluated`` rides along as a submodule."""
    import copy

    all_x, all_y = data.all_labelled()
    warm = copy.deepcopy(evaluated) if winner == "model" else None
    served = fit_candidate(winner, data.classes, all_x, all_y, params, warm=warm)
    if winner == "model":
        served.history = {**evaluated.history, **{f"served_{k}": v for k, v in served.history.items()}}
    served.selection = evaluated.selection
    served.train_pictures = len(all_x)
    served.evaluated = evaluated  # nn.Module attribute: registered, pickled, moved with the served model
    log.info("vision: served %s refit on all %d labelled pictures (gate judges the refit on %d)", winner,
             len(all_x), evaluated.train_pictures)
    return served


def score(model, data: VisionData) -> float:
    """Holdout macro-F1 of any vision model (e.g. a champion loaded back from the registry), judged by its
    :attr:`~pipelines.models.vision.classifier.ImageModel.holdout_model`."""
    return macro_f1(data.holdout_labels, model.holdout_model.classify(data.holdout_images), data.classes)


@contextmanager
def _trusted_pickle():
    """Allow MLflow to unpickle for the duration of one load of our own registry's model.

    The model is logged in pickle format so that its methods (``embed``, ``classify``, ``search``) and state
    (classes, gallery, a baseline's scikit-learn pipeline) survive; MLflow 3 refuses pickle loads unless this
    variable is set.
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
    return pinned_requirements("mlflow", "cloudpickle", "numpy", "pandas", "torch", "scikit-learn", "shopflow")


def log_model(model, data: VisionData):
    """Log the registered candidate (moved to CPU) with ``mlflow.pytorch`` in pickle format, so ``classify``/
    ``embed``/``search`` and the indexed catalogue come back with it; the signature describes the pyfunc
    ``forward``."""
    import mlflow
    import torch
    from mlflow.models import infer_signature

    from pipelines.models.vision.images import stack_same_size

    model = model.cpu().eval()
    example = stack_same_size(data.holdout_images[:2], model.image_size)
    with torch.no_grad():
        signature = infer_signature(example, model(torch.from_numpy(example)).numpy())
    return mlflow.pytorch.log_model(
        model, name="model", signature=signature, input_example=example, serialization_format="pickle",
        pip_requirements=_requirements(),
        metadata={"classes": model.classes, "image_size": model.image_size, "embedding_dim": model.embedding_dim,
                  "gallery_size": len(model.gallery_ids), "candidate": model.kind,
                  "train_pictures": getattr(model, "train_pictures", None),
                  "refit_on_all": model.holdout_model is not model},
    )


def load_model(uri: str):
    """The logged :class:`~pipelines.models.vision.classifier.ImageModel`, in eval mode on ``pick_device()``."""
    import mlflow

    from pipelines.utils import pick_device

    with _trusted_pickle():
        model = mlflow.pytorch.load_model(uri, map_location="cpu")
    return model.to(pick_device()).eval()
