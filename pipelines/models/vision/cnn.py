"""The product-image CNN: a small residual network (ResNet-8 shaped) with an embedding head.

Cheap enough for two shared CPU cores (about 8 M multiply-adds per 32x32 image at width 16, 30 M at 32), deep
enough to reach the field's numbers on small data sets when trained with strong augmentation
(:mod:`~pipelines.models.vision.train`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from pipelines.models.vision.classifier import ImageModel


class Residual(nn.Module):
    """Two 3x3 conv + batch norm layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Identity() if c_in == c_out and stride == 1 else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


class ProductVisionModel(ImageModel):
    """Stem (3x3 conv), three residual stages (widths w, 2w, 4w; the last two halve the resolution), global
    average pooling, a linear embedding and a linear classifier on top of it.

    Args:
        classes: Category names, in the order of the logits.
        image_size: Side of the square input every image is resized to.
        width: Channels of the first stage.
        embedding_dim: Size of the embedding used for similarity search.
        dropout: Dropout before the classifier.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, classes: list[str], image_size: int = 32, width: int = 16, embedding_dim: int = 64,
                 dropout: float = 0.2) -> None:
        super().__init__(classes, image_size, embedding_dim)
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            Residual(width, width, 1), Residual(width, 2 * width, 2), Residual(2 * width, 4 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.embedding = nn.Linear(4 * width, embedding_dim)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(embedding_dim, len(self.classes)))
        # Normalisation constants are buffers: they move with .to(device) and are saved.
        self.register_buffer("mean", torch.full((1, 3, 1, 1), 0.5))
        self.register_buffer("std", torch.full((1, 3, 1, 1), 0.25))

    def set_normalisation(self, x: torch.Tensor) -> None:
        """Per-channel mean and std of training images ``(N, 3, S, S)`` in [0, 1]."""
        self.mean.copy_(x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
        self.std.copy_(x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, embedding)`` of float images in [0, 1] already at ``image_size`` (training and inference)."""
        emb = self.embedding(self.backbone((x - self.mean) / self.std))
        return self.head(emb), emb

    def _scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference averages the picture and its mirror image (flip test-time augmentation: products have no
        preferred left/right; costs one more forward pass)."""
        logits, emb = self.encode(x)
        logits_m, emb_m = self.encode(x.flip(-1))
        return (logits + logits_m) / 2, (emb + emb_m) / 2
