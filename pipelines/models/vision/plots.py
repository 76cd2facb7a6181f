"""Figures of the vision family: confusion matrices, learning curves, nearest neighbours, augmentations."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(y_true, predictions: dict[str, np.ndarray], classes: list[str]):
    """One row-normalised confusion matrix per model, side by side."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    fig, axes = plt.subplots(1, len(predictions), figsize=(5.2 * len(predictions), 4.8), squeeze=False)
    for ax, (name, pred) in zip(axes[0], predictions.items(), strict=True):
        cm = confusion_matrix(list(y_true), list(pred), labels=classes)
        rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i, j in np.ndindex(cm.shape):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(len(classes)), classes, fontsize=8)
        acc = float(np.trace(cm) / max(cm.sum(), 1))
        ax.set(xlabel="predicted", ylabel="true", title=f"{name} (accuracy {acc:.2f})")
    fig.suptitle("Holdout confusion (counts; colour = share of the true class)")
    fig.tight_layout()
    return fig


def learning_curves(history: dict[str, list[float]]):
    """Loss and accuracy per epoch of every curve recorded: training (augmented) and validation, for the refit and,
    prefixed ``selection_``, for the candidate-selection run."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, values in history.items():
        ax = ax_loss if key.endswith("loss") else ax_acc
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=3,
                label=key.replace("_loss", "").replace("_accuracy", "").replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy", ylim=(0, 1.02))
    ax_loss.legend()
    ax_acc.legend(loc="lower right")
    fig.tight_layout()
    return fig


def _mosaic(tiles: Sequence[Sequence[np.ndarray | None]], frames: Sequence[Sequence[Sequence[float] | None]],
            pad: int = 3) -> np.ndarray:
    """One RGB picture of equally sized tiles in a grid, each framed in its colour (``None``: no frame / blank).

    A single image is much faster to draw than one matplotlib axes per tile.
    """
    size = next(t for row in tiles for t in row if t is not None).shape[0]
    cell = size + 2 * pad
    n_rows, n_cols = len(tiles), max(len(row) for row in tiles)
    out = np.full((n_rows * cell, n_cols * cell, 3), 255, dtype=np.uint8)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            if tile is None:
                continue
            y, x = i * cell, j * cell
            frame = frames[i][j]
            if frame is not None:
                out[y:y + cell, x:x + cell] = np.round(np.asarray(frame[:3]) * 255).astype(np.uint8)
            out[y + pad:y + pad + size, x + pad:x + pad + size] = tile
    return out


def neighbour_grid(images: np.ndarray, labels: np.ndarray, queries: np.ndarray, neighbours: np.ndarray,
                   n_rows: int = 8, n_cols: int = 6):
    """Query pictures (first column) and their nearest catalogue neighbours; green = same category, red = not.

    Shows the first query of each category (up to ``n_rows``) so every category appears once.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb

    rows, seen = [], set()
    for r, q in enumerate(queries):
        if labels[q] not in seen:
            seen.add(labels[q])
            rows.append(r)
    rows = rows[:n_rows]
    n_cols = min(n_cols, neighbours.shape[1])
    green, red, black = to_rgb("tab:green"), to_rgb("tab:red"), (0.0, 0.0, 0.0)
    tiles, frames, names = [], [], []
    for r in rows:
        q, nn = queries[r], [int(j) for j in neighbours[r, :n_cols]]
        tiles.append([images[q]] + [images[j] for j in nn])
        frames.append([black] + [green if labels[j] == labels[q] else red for j in nn])
        names.append(f"{labels[q]}: " + ", ".join(str(labels[j]) for j in nn))
    mosaic = _mosaic(tiles, frames)
    cell = mosaic.shape[0] / len(rows)
    fig, ax = plt.subplots(figsize=(1.1 * (n_cols + 1) + 2.6, 1.1 * len(rows) + 0.6))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_yticks([(i + 0.5) * cell for i in range(len(rows))], [str(labels[queries[r]]) for r in rows], fontsize=8)
    ax.set_xticks([cell / 2], ["query"], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"Holdout queries and their {n_cols} nearest products by CNN embedding (cosine)\n"
                 "green frame = same category, red = different", fontsize=9)
    fig.tight_layout()
    return fig


def augmentation_grid(train_x: np.ndarray, params, strength: float, p_erase: float, n_images: int = 6, n_copies: int = 7):
    """A few training images (first column, black frame) and augmented copies of each, as the CNN sees them."""
    import matplotlib.pyplot as plt
    import torch

    from pipelines.models.vision.augment import AugmentConfig, augment
    from pipelines.models.vision.images import to_uint8

    gen = torch.Generator().manual_seed(params.seed)
    pick = np.linspace(0, len(train_x) - 1, min(n_images, len(train_x))).astype(int)
    base = torch.from_numpy(train_x[pick]).permute(0, 3, 1, 2).float() / 255.0
    cfg = AugmentConfig.scaled(strength, params.p_grey, p_erase)
    copies = [to_uint8(augment(base, cfg, gen)) for _ in range(n_copies)]
    tiles = [[train_x[p]] + [c[i] for c in copies] for i, p in enumerate(pick)]
    frames = [[(0.0, 0.0, 0.0)] + [None] * n_copies for _ in pick]
    fig, ax = plt.subplots(figsize=(1.0 * (n_copies + 1), 1.0 * len(pick) + 0.5))
    ax.imshow(_mosaic(tiles, frames), interpolation="nearest")
    ax.axis("off")
    ax.set_title("Training images (framed) and random augmentations", fontsize=9)
    fig.tight_layout()
    return fig
