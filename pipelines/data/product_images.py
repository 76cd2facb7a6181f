"""The generator's product photos: several views of every product, with realistic variation.

Each category has a shape, a texture and a colour palette; categories come in look-alike pairs (wide vs tall box,
disc vs ring, ellipse vs diamond, triangle vs cross) that share a palette and sometimes a texture, and a quarter of
the products take any colour, so colour alone separates categories poorly. A product fixes its colour, texture scale, proportions and
size; each view then varies pose (rotation), scale, position, background (tinted, graded, sometimes dark),
lighting (a directional gradient), sensor noise, blur and clutter at the border. Drawn at twice the resolution
and averaged down (anti-aliasing).

Views are stored as ``images/<product_id>.png`` (the first, referenced by ``products.image_file``) and
``views/<product_id>/<k>.png`` for the others (k = 1, 2, ...), which the vision family reads as more labelled
pictures of the same product.
"""

from __future__ import annotations

import colorsys
import io

import numpy as np
from PIL import Image

IMAGE_SIZE = 32
SUPERSAMPLE = 2
VIEWS_PER_PRODUCT = 6
"""Pictures per product (the catalogue photo and five more views)."""

PALETTES = {"A": (0.60, 0.02, 0.10), "B": (0.92, 0.08, 0.50), "C": (0.30, 0.20, 0.12), "D": (0.85, 0.15, 0.70)}
"""Hues shared by look-alike pairs (and partly across pairs: 0.08-0.15 recur), so colour is a weak cue."""
STYLE = {
    # category: (shape, texture, palette)
    "electronics": ("wide", "grid", "A"),
    "books": ("tall", "lines", "A"),
    "home": ("ring", "checker", "B"),
    "beauty": ("disc", "dots", "B"),
    "sports": ("ellipse", "hstripes", "C"),
    "grocery": ("diamond", "gradient", "C"),
    "fashion": ("triangle", "diagonal", "D"),
    "toys": ("cross", "speckle", "D"),
}
ANY_COLOUR_P = 0.25
LOOK_ALIKE = {a: b for pair in (("electronics", "books"), ("home", "beauty"), ("sports", "grocery"),
                                ("fashion", "toys")) for a, b in (pair, pair[::-1])}
TEXTURE_SWAP_P = 0.2
"""Share of products wearing their look-alike's texture; near-square boxes and rings with a tiny hole then
differ from their look-alike only in proportions."""


def _mask(shape: str, u: np.ndarray, v: np.ndarray, aspect: float, hole: float) -> np.ndarray:
    """Foreground of a shape in object coordinates (``u``, ``v`` in about [-1, 1])."""
    if shape == "wide":
        return (np.abs(u) < 1) & (np.abs(v) < aspect)
    if shape == "tall":
        return (np.abs(u) < aspect) & (np.abs(v) < 1)
    r2 = u**2 + v**2
    if shape == "ring":
        return (r2 < 1) & (r2 > hole)
    if shape == "disc":
        return r2 < 1
    if shape == "ellipse":
        return u**2 + (v / aspect) ** 2 < 1
    if shape == "triangle":
        return (v < 1) & (v > -1) & (np.abs(u) < (v + 1) / 2)
    if shape == "cross":
        arm = 0.2 + 0.25 * (1 - aspect)
        return ((np.abs(u) < arm) & (np.abs(v) < 1)) | ((np.abs(v) < arm) & (np.abs(u) < 1))
    return np.abs(u) + np.abs(v) < 1  # diamond


def _texture(texture: str, u: np.ndarray, v: np.ndarray, freq: float, phase: float) -> np.ndarray:
    """Brightness multiplier in [0.65, 1] of the foreground, in object coordinates (it turns with the product)."""
    a, b = u * freq + phase, v * freq + phase
    if texture == "grid":
        on = (np.abs(a - np.round(a)) < 0.12) | (np.abs(b - np.round(b)) < 0.12)
    elif texture == "diagonal":
        on = np.floor(a + b) % 2 == 0
    elif texture == "checker":
        on = (np.floor(a) + np.floor(b)) % 2 == 0
    elif texture == "dots":
        on = (a - np.round(a)) ** 2 + (b - np.round(b)) ** 2 < 0.06
    elif texture == "hstripes":
        on = np.floor(b) % 2 == 0
    elif texture == "lines":
        on = np.abs(b - np.round(b)) < 0.1
    elif texture == "gradient":
        return 0.65 + 0.35 * (v + 1) / 2
    else:  # speckle: a fixed pseudo-random pattern of the object surface
        on = (np.floor(a * 2) * 7 + np.floor(b * 2) * 13) % 5 == 0
    return np.where(on, 0.65, 1.0)


def _product_look(rng: np.random.Generator, category: str) -> dict:
    """What stays the same across a product's views."""
    shape, texture, palette = STYLE[category]
    if rng.random() < TEXTURE_SWAP_P:
        texture = STYLE[LOOK_ALIKE[category]][1]
    hue = rng.random() if rng.random() < ANY_COLOUR_P else rng.choice(PALETTES[palette]) + rng.normal(0, 0.03)
    fg = np.array(colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.35, 0.95), rng.uniform(0.45, 0.95)))
    return {"shape": shape, "texture": texture, "fg": fg, "aspect": rng.uniform(0.5, 0.95),
            "hole": rng.uniform(0.04, 0.4), "freq": rng.uniform(2.0, 4.0), "phase": rng.uniform(0, 1),
            "size": rng.uniform(0.55, 0.8), "pose": rng.uniform(-20, 20)}


def _view(rng: np.random.Generator, look: dict) -> np.ndarray:
    """One photo of a product: uint8 ``(IMAGE_SIZE, IMAGE_SIZE, 3)``."""
    n = IMAGE_SIZE * SUPERSAMPLE
    yy, xx = (np.mgrid[0:n, 0:n].astype(float) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    angle = np.deg2rad(look["pose"] + rng.uniform(-30, 30))
    scale = look["size"] * rng.uniform(0.7, 1.15)
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    dx, dy = (xx - cx) / scale, (yy - cy) / scale
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    mask = _mask(look["shape"], u, v, look["aspect"], look["hole"])
    fg = look["fg"][None, None, :] * _texture(look["texture"], u, v, look["freq"], look["phase"])[..., None]

    dark = rng.random() < 0.12
    bg_hsv = (rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.1, 0.3) if dark else rng.uniform(0.75, 1.0))
    bg = np.array(colorsys.hsv_to_rgb(*bg_hsv))[None, None, :]
    g_dir = rng.normal(size=2)
    bg = bg * (1 + 0.12 * (g_dir[0] * xx + g_dir[1] * yy))[..., None]  # a graded studio backdrop
    img = np.where(mask[..., None], fg, bg)
    if rng.random() < 0.3:  # clutter: part of another object at the border
        ex, ey = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 1.1), rng.uniform(-1, 1)
        other = (np.abs(xx - ex) < rng.uniform(0.15, 0.4)) & (np.abs(yy - ey) < rng.uniform(0.15, 0.5))
        img = np.where(other[..., None], np.array(colorsys.hsv_to_rgb(rng.random(), 0.4, 0.6)), img)
    light = rng.normal(size=2) * 0.15
    img = img * rng.uniform(0.75, 1.15) * (1 + light[0] * xx + light[1] * yy)[..., None]
    img = img.reshape(IMAGE_SIZE, SUPERSAMPLE, IMAGE_SIZE, SUPERSAMPLE, 3).mean(axis=(1, 3)) * 255
    if rng.random() < 0.25:  # out of focus
        img = (img + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, (1, 1), (0, 1))) / 4
    img = img + rng.normal(0, rng.uniform(2, 14), img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def render_views(rng: np.random.Generator, categories: list[str], ids: list[str],
                 views: int = VIEWS_PER_PRODUCT) -> dict[str, bytes]:
    """PNG files of ``views`` photos of each product: ``images/<id>.png`` then ``views/<id>/<k>.png``."""
    files: dict[str, bytes] = {}
    for pid, category in zip(ids, categories, strict=True):
        look = _product_look(rng, category)
        for k in range(views):
            files[f"images/{pid}.png" if k == 0 else f"views/{pid}/{k}.png"] = _png(_view(rng, look))
    return files
