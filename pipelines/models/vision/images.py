"""Turning product images of any size and mode into fixed-size RGB tensors, and colour histograms.

Every path into the models (training on batch images, evaluation, serving) goes through
:func:`to_tensor`, so an image is seen the same way at training and at inference time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

WHITE = 255.0
"""Background that transparent pixels are composited onto (product shots sit on light backgrounds)."""


def load_image(path: Path) -> np.ndarray:
    """Read an image file as uint8 pixels: ``(H, W)`` for greyscale modes, ``(H, W, 3)`` otherwise.

    Palette and alpha images are converted by PIL; transparency is composited onto white.
    """
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode in ("1", "L", "I", "I;16", "F"):
            return np.asarray(img.convert("L"), dtype=np.uint8)
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
    return np.round(_composite(rgba)).astype(np.uint8)


def _composite(pixels: np.ndarray) -> np.ndarray:
    """RGB(A) or grey+alpha ``(H, W, C)`` float pixels -> colour pixels with alpha composited onto white."""
    colour, alpha = pixels[..., :-1], pixels[..., -1:] / 255.0
    return colour * alpha + WHITE * (1.0 - alpha)


def as_image_list(images: Any) -> list[np.ndarray]:
    """Split the accepted input forms into a list of single images.

    Accepted: one image ``(H, W)`` (greyscale) or ``(H, W, C)`` with ``C`` in 1, 3, 4; a batch ``(N, H, W, C)`` or
    ``(N, H, W)`` (greyscale; only when the last axis is not 1, 3 or 4, which would read as one image); a list or
    tuple of images of different sizes and modes; or a torch tensor of any of these shapes.
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, (list, tuple)):
        return [np.asarray(im.detach().cpu() if isinstance(im, torch.Tensor) else im) for im in images]
    arr = np.asarray(images)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
        return [arr]
    if arr.ndim in (3, 4):
        return list(arr)
    raise ValueError(f"expected an image (H, W[, C]) or a batch of images, got an array of shape {arr.shape}")


def _check_pixels(img: np.ndarray) -> np.ndarray:
    """uint8-compatible pixels as float32 ``(H, W, C)`` with C in 1..4; integers must lie in 0..255."""
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.integer):
            raise TypeError(f"expected uint8 pixels (0..255), got dtype {img.dtype}")
        if img.size and (img.min() < 0 or img.max() > 255):
            raise ValueError("integer pixels must lie in 0..255")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[-1] not in (1, 2, 3, 4) or min(img.shape[:2]) < 1:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C) with C in 1..4, got {img.shape}")
    return img.astype(np.float32)


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    """``(..., H, W, C)`` float pixels with any supported C -> ``(..., H, W, 3)``."""
    c = pixels.shape[-1]
    if c in (2, 4):
        pixels = _composite(pixels)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels


def _square_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """``(N, 3, H, W)`` -> ``(N, 3, size, size)``: pad the short side with edge pixels, then resize.

    Padding instead of stretching keeps shapes (a circle stays round); edge replication continues the
    background. Antialiasing makes large inputs shrink like the camera would have seen them small.
    """
    h, w = x.shape[-2:]
    if h != w:
        d = abs(h - w)
        pad = (d // 2, d - d // 2, 0, 0) if h > w else (0, 0, d // 2, d - d // 2)
        x = F.pad(x, pad, mode="replicate")
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


def to_tensor(images: Any, size: int) -> torch.Tensor:
    """Images in any accepted form (see :func:`as_image_list`) -> float ``(N, 3, size, size)`` in [0, 1].

    Greyscale is replicated to three channels, alpha composited onto white, non-square images padded to a
    square, and everything resized to ``size``. Images of equal shape are processed together.
    """
    items = [_check_pixels(im) for im in as_image_list(images)]
    if not items:
        return torch.zeros(0, 3, size, size)
    out = torch.empty(len(items), 3, size, size)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(items):
        groups.setdefault(im.shape, []).append(i)
    for idx in groups.values():
        batch = _to_rgb(np.stack([items[i] for i in idx]))
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2) / 255.0
        out[idx] = _square_resize(x, size).clamp(0.0, 1.0)
    return out


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` floats in [0, 1] -> ``(N, H, W, 3)`` uint8 (for plots and the baseline)."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def colour_histograms(pixels: np.ndarray, bins: int) -> np.ndarray:
    """Joint RGB histogram of each ``(N, H, W, 3)`` uint8 image, ``bins`` per channel, square-rooted.

    The square root (Hellinger map) makes Euclidean/cosine geometry match histogram similarity better and
    stops the large background bin from dominating.
    """
    q = (pixels.astype(np.int64) * bins) // 256
    code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    n = code.shape[0]
    flat = code.reshape(n, -1) + np.arange(n)[:, None] * bins**3
    hist = np.bincount(flat.ravel(), minlength=n * bins**3).reshape(n, bins**3).astype(np.float64)
    hist /= hist.sum(axis=1, keepdims=True)
    return np.sqrt(hist)


def stack_same_size(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Images of any size and mode as one ``(N, size, size, 3)`` uint8 array (the model's view of them)."""
    return to_uint8(to_tensor(list(images), size))
