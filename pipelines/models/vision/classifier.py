"""What every registered vision model is: an image classifier with an embedding and an indexed catalogue.

:class:`ImageModel` is the family's flavor contract. The CNN (:mod:`~pipelines.models.vision.cnn`) and the
baselines when they win the selection (:mod:`~pipelines.models.vision.baselines`) subclass it, so whichever
candidate is registered is logged with ``mlflow.pytorch`` (pickle format), loaded, gated and served the same way.
Subclasses implement :meth:`_scores` (logits and embedding of model-ready images).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.models.vision.images import to_tensor

CHUNK = 256
"""Images per forward pass at inference (bounds memory for large galleries)."""


class ImageModel(nn.Module):
    """Classifier + embedding + catalogue search over images of any size and mode.

    Args:
        classes: Category names, in the order of the logits.
        image_size: Side of the square input every image is resized to (:func:`to_tensor`).
        embedding_dim: Size of the embedding used for similarity search.
    """

    gallery: torch.Tensor
    kind = "model"
    """Candidate name of this model (``"model"`` for the CNN, the baseline's name otherwise)."""

    def __init__(self, classes: list[str], image_size: int, embedding_dim: int) -> None:
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.image_size = int(image_size)
        self.embedding_dim = int(embedding_dim)
        self.register_buffer("gallery", torch.zeros(0, embedding_dim))
        self.gallery_ids: list[str] = []
        self.gallery_labels: list[str] = []
        self.history: dict[str, list[float]] = {}

    def _scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, embedding)`` of float images ``(N, 3, S, S)`` in [0, 1]."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.gallery.device

    @property
    def holdout_model(self) -> "ImageModel":
        """The model the gate judges on the holdout: the copy trained without the holdout pictures when this (served)
        model was refit on all of them (``refit_on_all``), else the model itself (and for versions logged before)."""
        evaluated = self._modules.get("evaluated")
        return self if evaluated is None else evaluated

    def preprocess(self, images: Any) -> torch.Tensor:
        """Any accepted images (see :func:`pipelines.models.vision.images.as_image_list`) -> model input tensor."""
        return to_tensor(images, self.image_size)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and embeddings in eval mode, in chunks; restores the train/eval mode afterwards."""
        was_training = self.training
        self.eval()
        logits, embs = [], []
        with torch.no_grad():
            for start in range(0, x.shape[0], CHUNK):
                lo, em = self._scores(x[start:start + CHUNK].to(self.device))
                logits.append(lo.cpu())
                embs.append(em.cpu())
        self.train(was_training)
        if not logits:
            return torch.zeros(0, len(self.classes)), torch.zeros(0, self.embedding_dim)
        return torch.cat(logits), torch.cat(embs)

    def predict_proba(self, images: Any) -> np.ndarray:
        """Class probabilities ``(N, n_classes)``, columns in the order of :attr:`classes`."""
        logits, _ = self._run(self.preprocess(images))
        return torch.softmax(logits, dim=1).numpy()

    def classify(self, images: Any) -> np.ndarray:
        """Predicted category name of each image, ``(N,)``."""
        return np.asarray(self.classes, dtype=object)[self.predict_proba(images).argmax(axis=1)]

    def embed(self, images: Any) -> np.ndarray:
        """L2-normalised embeddings ``(N, embedding_dim)``: cosine similarity is a dot product."""
        _, emb = self._run(self.preprocess(images))
        return torch.nn.functional.normalize(emb, dim=1).numpy()

    def set_gallery(self, ids: list[str], images: Any, labels: list[str] | None = None) -> None:
        """Index the catalogue for :meth:`search` (exact cosine search: catalogues here are small)."""
        emb = torch.from_numpy(self.embed(images))
        if emb.shape[0] != len(ids):
            raise ValueError(f"{len(ids)} ids for {emb.shape[0]} images")
        self.gallery = emb.to(self.device)
        self.gallery_ids = [str(i) for i in ids]
        self.gallery_labels = [str(c) for c in labels] if labels is not None else [""] * len(ids)

    def search(self, images: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar catalogue products of each image.

        Returns:
            ``(ids, scores)``, both ``(N, k')`` with ``k' = min(k, gallery size)``, best first; scores are cosine
            similarities.
        """
        _, ids, scores = self.classify_and_search(images, k)
        return ids, scores

    def classify_and_search(self, images: Any, k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(categories (N,), ids (N, k'), scores (N, k'))``: :meth:`classify` and :meth:`search` from one forward
        pass (what serving answers per request; half the inference of calling both)."""
        if not self.gallery_ids:
            raise RuntimeError("no gallery indexed; call set_gallery first")
        logits, emb = self._run(self.preprocess(images))
        sims = torch.nn.functional.normalize(emb, dim=1) @ self.gallery.cpu().T
        top = torch.topk(sims, k=min(k, sims.shape[1]), dim=1)
        ids = np.asarray(self.gallery_ids, dtype=object)[top.indices.numpy()]
        categories = np.asarray(self.classes, dtype=object)[logits.argmax(dim=1).numpy()]
        return categories, ids, top.values.numpy()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a pixel batch ``(N, H, W, C)`` (or ``(N, H, W)`` greyscale), values 0..255.

        This is the pyfunc entry point (``mlflow.pyfunc`` passes one tensor); any size is resized to the model's.
        """
        x = pixels.detach().to("cpu", torch.float32)
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = to_tensor(list(x.round().clamp(0, 255).to(torch.uint8).numpy()), self.image_size)
        logits, _ = self._run(x)
        return torch.softmax(logits, dim=1)
