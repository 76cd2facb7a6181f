"""Hyper-parameters of the vision family; the ``None`` ones are chosen from the number of training images."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from pipelines.spec import ModelParams


class VisionParams(ModelParams):
    """Hyper-parameters of the vision model (override with ``--set key=value``; ``None`` = scaled to the data)."""

    holdout_fraction: float | None = Field(None, gt=0, lt=1, description=(
        "Share of each category's products held out for the gate. Default: about 1,500 images' worth, "
        "between 10 % and 30 %."))
    validation_fraction: float | None = Field(None, gt=0, lt=1, description=(
        "Share of each category's training products that pick the candidate. Default: about 1,000 images' "
        "worth, between 10 % and 25 %."))
    image_size: int | None = Field(None, ge=16, le=128, description=(
        "Side of the square model input. Default: the pictures' own typical side (median of the longer side), "
        "between 16 and 32."))
    width: int | None = Field(None, ge=4, le=128, description=(
        "Channels of the first residual stage (then 2x, 4x). Default 16 below 5,000 training images, else 32 "
        "(wider costs ~2.5x per 2x on CPU; with thousands of images it pays, measured on Fashion-MNIST)."))
    embedding_dim: int = Field(64, ge=8, le=1024)
    dropout: float = Field(0.2, ge=0, lt=1)
    epochs: int | None = Field(None, ge=1, le=500, description=(
        "Passes of ``samples_per_epoch`` augmented images. Default: 30 below 2,000 training images, 20 below "
        "5,000, else 60 (with light augmentation; see docs/models/vision.md for the validation runs)."))
    samples_per_epoch: int | None = Field(None, ge=32, le=1_000_000, description=(
        "Augmented images drawn per epoch. Default: the training set, at least 1,024."))
    batch_size: int | None = Field(None, ge=4, le=4096, description=(
        "Default 32 below 1,000 training images, 64 below 5,000, else 128."))
    learning_rate: float = Field(0.1, gt=0, le=10, description="Peak of the one-cycle schedule (SGD, Nesterov).")
    weight_decay: float = Field(5e-4, ge=0)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    augment: float | None = Field(None, ge=0, le=2, description=(
        "Strength of the geometric and photometric augmentation (1 = the reference strength). Default: 1.0 "
        "below 2,000 training images (few examples: strong invariances needed), 0.6 below 5,000, else 0.3."))
    p_grey: float = Field(0.2, ge=0, le=1, description="Probability of a greyscale training copy.")
    p_erase: float | None = Field(None, ge=0, le=1, description=(
        "Probability of erasing a random patch (cutout). Default 0.5 below 5,000 training images, else 0 (enough "
        "examples: cutout then costs accuracy, measured on Fashion-MNIST)."))
    histogram_bins: int = Field(4, ge=2, le=16, description="Bins per channel of the colour-histogram baseline.")
    pixel_size: int = Field(28, ge=8, le=64, description="Side of the images the raw-pixel baseline sees.")
    refit_on_all: bool = Field(True, description=(
        "Serve the chosen candidate continued on every labelled picture, holdout included (a CNN: a quarter of the "
        "epochs more, warm). The gate and the reports judge the copy trained without the holdout, which the "
        "version carries. False: serve exactly the judged model."))
    cpu_threads: int = Field(1, ge=1, le=256, description=(
        "torch intra-op threads on CPU. Convolutions this small gain little from more threads and slow down "
        "badly when the cores are shared (measured: 2 threads cost 5x the CPU time of 1 on a busy 2-core box)."))


@dataclass(frozen=True)
class Schedule:
    """The training settings actually used for ``n`` training images (``None`` params resolved)."""

    width: int
    epochs: int
    samples_per_epoch: int
    batch_size: int
    augment: float
    p_erase: float


def schedule(params: VisionParams, n: int) -> Schedule:
    """Resolve the data-size dependent defaults (explicit params always win).

    Small sets get many augmented passes, a narrow net and strong augmentation; large ones a wider net, bigger
    batches and fewer, longer epochs (each epoch covers the set once).
    """
    large = n >= 5000  # thousands of pictures: a wider net, more passes of light augmentation, no cutout
    epochs = 30 if n < 2000 else 20 if n < 5000 else 60
    return Schedule(
        width=params.width or (32 if large else 16),
        epochs=params.epochs or epochs,
        samples_per_epoch=params.samples_per_epoch or max(n, 1024),
        batch_size=params.batch_size or (32 if n < 1000 else 64 if n < 5000 else 128),
        augment=params.augment if params.augment is not None else (1.0 if n < 2000 else 0.6 if n < 5000 else 0.3),
        p_erase=params.p_erase if params.p_erase is not None else (0.5 if n < 5000 else 0.0),
    )


def holdout_fraction(params: VisionParams, n: int) -> float:
    """Share held out for the gate: ~1,500 images (enough for a tight bootstrap) within 10-30 %."""
    return params.holdout_fraction or min(0.3, max(0.1, 1500 / max(n, 1)))


def validation_fraction(params: VisionParams, n: int) -> float:
    """Share of the training part used for candidate selection: ~1,000 images within 10-25 %."""
    return params.validation_fraction or min(0.25, max(0.1, 1000 / max(n, 1)))


def image_size(params: VisionParams, sides: list[int]) -> int:
    """Model input side: the explicit param, else the median longer side of the pictures within 16..32 (Fashion-MNIST
    stays 28, product photos 32, large photos shrink to 32: a small net on a CPU budget)."""
    if params.image_size:
        return params.image_size
    return int(min(32, max(16, sorted(sides)[len(sides) // 2]))) if sides else 32
