"""The product-image CNN and the object the registry stores: classifier + embedding + product gallery.

:class:`ProductVisionModel` is what ``mlflow.pytorch`` logs (pickle format, so its methods and state survive):
``classify``/``predict_proba``/``embed``/``search`` accept uint8 images of any size, greyscale or RGB(A), and
``forward`` takes a pixel tensor ``(N, H, W, C)`` (what the pyfunc flavor passes) and returns class probabilities.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from pipelines.vision_lib.images import to_tensor

CHUNK = 256
"""Images per forward pass at inference (bounds memory for large galleries)."""


def _block(c_in: int, c_out: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ProductVisionModel(nn.Module):
    """Small VGG-style CNN: three conv stages (widths w, 2w, 4w; 3x3 conv + batch norm + ReLU, max-pooling
    between stages), global average pooling, a linear embedding and a linear classifier on top of it.

    Args:
        classes: Category names, in the order of the logits.
        image_size: Side of the square input every image is resized to.
        width: Channels of the first stage.
        convs_per_stage: 3x3 convolutions per stage.
        embedding_dim: Size of the penultimate embedding used for similarity search.
        dropout: Dropout before the classifier.
    """

    mean: torch.Tensor
    std: torch.Tensor
    gallery: torch.Tensor

    def __init__(self, classes: list[str], image_size: int = 32, width: int = 16, embedding_dim: int = 64,
                 dropout: float = 0.2, convs_per_stage: int = 1) -> None:
        super().__init__()
        self.classes = [str(c) for c in classes]
        self.image_size = int(image_size)
        self.embedding_dim = int(embedding_dim)
        self.backbone = nn.Sequential(
            _block(3, width, convs_per_stage), nn.MaxPool2d(2),
            _block(width, 2 * width, convs_per_stage), nn.MaxPool2d(2),
            _block(2 * width, 4 * width, convs_per_stage), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.embedding = nn.Linear(4 * width, embedding_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(embedding_dim, len(self.classes)))
        # Normalisation constants and the search gallery are buffers: they move with .to(device) and are saved.
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))
        self.register_buffer("gallery", torch.zeros(0, embedding_dim))
        self.gallery_ids: list[str] = []
        self.gallery_labels: list[str] = []
        self.history: dict[str, list[float]] = {}

    # ---- training-time API: float images in [0, 1], (N, 3, S, S) -------------------------------------------------

    def set_normalisation(self, x: torch.Tensor) -> None:
        """Per-channel mean and std of training images ``(N, 3, S, S)`` in [0, 1]."""
        self.mean.copy_(x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
        self.std.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, embedding)`` of float images in [0, 1] already at ``image_size``."""
        emb = self.embedding(self.backbone((x - self.mean) / self.std))
        return self.head(emb), emb

    # ---- inference API: uint8 pixels of any size and mode -----------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def preprocess(self, images: Any) -> torch.Tensor:
        """Any accepted images (see :func:`pipelines.vision_lib.images.as_image_list`) -> model input tensor."""
        return to_tensor(images, self.image_size)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and embeddings in eval mode, in chunks; restores the train/eval mode afterwards."""
        was_training = self.training
        self.eval()
        logits, embs = [], []
        with torch.no_grad():
            for start in range(0, x.shape[0], CHUNK):
                lo, em = self.encode(x[start:start + CHUNK].to(self.device))
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
        """L2-normalised penultimate embeddings ``(N, embedding_dim)``: cosine similarity is a dot product."""
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
        if not self.gallery_ids:
            raise RuntimeError("no gallery indexed; call set_gallery first")
        query = torch.from_numpy(self.embed(images))
        sims = query @ self.gallery.cpu().T
        top = torch.topk(sims, k=min(k, sims.shape[1]), dim=1)
        ids = np.asarray(self.gallery_ids, dtype=object)[top.indices.numpy()]
        return ids, top.values.numpy()

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
