"""More training pictures per category, drawn by the generator's own product-image renderer.

Product images are public data (they are in every batch), and so is the way the generator draws them; what a
render reveals is the look of a category, not any hidden quantity of the batch (elasticity, demand, ...). The
renders use their own seed stream, distinct from the one the batch's images came from, so no batch image is
reproduced (``prepare`` also checks for exact duplicates).
"""

from __future__ import annotations

import io

import numpy as np

RENDER_STREAM = 0x5EED_1A6E
"""Mixed into the seed so renders never share a random stream with a batch (whose streams come from
``SeedSequence(seed).spawn``)."""


def known_categories() -> tuple[str, ...]:
    """Categories the generator can draw."""
    from pipelines.data.generator import CATEGORIES

    return tuple(CATEGORIES)


def render(categories: list[str], per_category: int, seed: int, stream: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """``per_category`` fresh images of each category, as the generator would draw new products.

    Args:
        categories: Generator category names to draw.
        per_category: Images per category.
        seed: Seed of the draw (e.g. the family's ``params.seed``).
        stream: Sub-stream, to draw independent sets (e.g. 0 for training, 1 for validation) from one seed.

    Returns:
        ``(images, labels)``: uint8 ``(32, 32, 3)`` arrays and their category names, category-major order.

    Raises:
        ValueError: for a category the generator does not know.
    """
    from PIL import Image

    # A private helper of the shared generator module: the lead may expose it publicly (see docs/models/vision.md).
    from pipelines.data.generator import CATEGORIES, _render_images

    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"the generator cannot draw categories {unknown}; known: {list(CATEGORIES)}")
    codes = np.repeat([CATEGORIES.index(c) for c in categories], per_category)
    ids = np.array([f"S{i:06d}" for i in range(codes.size)])
    rng = np.random.default_rng(np.random.SeedSequence([seed, RENDER_STREAM, stream]))
    files = _render_images(rng, {"category": codes}, ids)
    images = []
    for pid in ids:
        with Image.open(io.BytesIO(files[f"images/{pid}.png"])) as img:
            images.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
    return images, [CATEGORIES[c] for c in codes]
