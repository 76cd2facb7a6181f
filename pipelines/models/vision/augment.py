"""Batch augmentations written with plain torch ops (torchvision does not import here).

All functions take float ``(N, 3, H, W)`` images in [0, 1] and a seeded :class:`torch.Generator`, so a run is
reproducible; random draws are made on the CPU generator and moved to the images' device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation.

    Attributes:
        p_flip: Probability of a horizontal flip (product shots have no preferred left/right).
        max_shift: Largest translation, as a fraction of the image side.
        scale: Range of the zoom factor.
        max_rotation: Largest rotation in degrees.
        brightness: Largest relative brightness change.
        contrast: Largest relative contrast change.
        saturation: Largest relative saturation change.
        p_grey: Probability of turning an image greyscale (so greyscale inputs still classify sensibly).
        max_noise: Largest standard deviation of additive Gaussian pixel noise (0..1 scale).
        p_blur: Probability of a down- then up-sampling blur (inputs resized from other resolutions).
        p_erase: Probability of erasing a random square patch (cutout: occlusion, forces several cues).
        erase_side: Side of the erased square, as a fraction of the image side.
    """

    p_flip: float = 0.5
    max_shift: float = 0.12
    scale: tuple[float, float] = (0.85, 1.15)
    max_rotation: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.3
    p_grey: float = 0.2
    max_noise: float = 0.05
    p_blur: float = 0.15
    p_erase: float = 0.0
    erase_side: float = 0.3

    @classmethod
    def scaled(cls, strength: float, p_grey: float = 0.2, p_erase: float = 0.5) -> "AugmentConfig":
        """The reference strengths (the defaults) scaled by ``strength`` (0 = none); flips are always on."""
        ref = cls()
        return cls(max_shift=ref.max_shift * strength,
                   scale=(1 - (1 - ref.scale[0]) * strength, 1 + (ref.scale[1] - 1) * strength),
                   max_rotation=ref.max_rotation * strength, brightness=ref.brightness * strength,
                   contrast=ref.contrast * strength, saturation=ref.saturation * strength, p_grey=p_grey,
                   max_noise=ref.max_noise * strength, p_blur=ref.p_blur * strength, p_erase=p_erase)


def _u(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g)).to(device)


def _bern(n: int, p: float, g: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=g) < p).to(device)


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (ITU-R 601) replicated to three channels."""
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x)


def random_affine(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Random flip, shift, zoom and small rotation in one resampling (border pixels fill the gaps)."""
    n, dev = x.shape[0], x.device
    angle = _u(n, -cfg.max_rotation, cfg.max_rotation, g, dev) * math.pi / 180
    zoom = _u(n, *cfg.scale, g, dev)
    flip = torch.where(_bern(n, cfg.p_flip, g, dev), -1.0, 1.0)
    tx = _u(n, -2 * cfg.max_shift, 2 * cfg.max_shift, g, dev)  # grid coordinates span 2 per side
    ty = _u(n, -2 * cfg.max_shift, 2 * cfg.max_shift, g, dev)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_jitter(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation jitter, then random greyscale. Hue is left alone: it carries signal."""
    n, dev = x.shape[0], x.device
    view = (n, 1, 1, 1)
    x = x * _u(n, 1 - cfg.brightness, 1 + cfg.brightness, g, dev).view(view)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * _u(n, 1 - cfg.contrast, 1 + cfg.contrast, g, dev).view(view) + mean
    gx = grey(x)
    x = gx + (x - gx) * _u(n, 1 - cfg.saturation, 1 + cfg.saturation, g, dev).view(view)
    return torch.where(_bern(n, cfg.p_grey, g, dev).view(view), grey(x), x)


def random_blur(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Resample a random subset down to 50-75 % of the side and back (lost detail of small source images)."""
    n, size = x.shape[0], x.shape[-1]
    chosen = _bern(n, cfg.p_blur, g, torch.device("cpu"))
    if not bool(chosen.any()):
        return x
    low = int(size * float(_u(1, 0.5, 0.75, g, "cpu")))
    idx = chosen.nonzero().flatten().to(x.device)
    small = F.interpolate(x[idx], size=(low, low), mode="bilinear", align_corners=False, antialias=True)
    out = x.clone()
    out[idx] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return out


def random_erase(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """Fill a random square (centre anywhere, so it may be cut by the border) of a random subset with its mean."""
    n, size = x.shape[0], x.shape[-1]
    side = max(1, int(round(cfg.erase_side * size)))
    centre = (torch.rand(n, 2, generator=g) * size).to(x.device)
    coords = torch.arange(size, device=x.device, dtype=torch.float32)
    inside_y = (coords.view(1, -1) - centre[:, :1]).abs() < side / 2
    inside_x = (coords.view(1, -1) - centre[:, 1:]).abs() < side / 2
    box = (inside_y[:, :, None] & inside_x[:, None, :]) & _bern(n, cfg.p_erase, g, x.device).view(n, 1, 1)
    return torch.where(box[:, None], x.mean(dim=(2, 3), keepdim=True), x)


def augment(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """The training augmentation: geometry, blur, colour, pixel noise, then cutout; output clamped to [0, 1]."""
    x = random_affine(x, cfg, g)
    x = random_blur(x, cfg, g)
    x = colour_jitter(x, cfg, g)
    sigma = _u(x.shape[0], 0.0, cfg.max_noise, g, x.device).view(-1, 1, 1, 1)
    noise = torch.randn(x.shape, generator=g).to(x.device)
    x = (x + sigma * noise).clamp(0.0, 1.0)
    return random_erase(x, cfg, g) if cfg.p_erase > 0 else x
