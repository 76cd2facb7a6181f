"""The vision baselines, as registrable models: logistic regressions on colour histograms and on raw pixels.

Both are :class:`~pipelines.models.vision.classifier.ImageModel` subclasses wrapping a fitted scikit-learn
pipeline, so a baseline that wins the candidate selection is logged, gated and served exactly like the CNN
(its features double as the similarity-search embedding).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipelines.models.vision.classifier import ImageModel
from pipelines.models.vision.images import colour_histograms, to_uint8
from pipelines.models.vision.params import VisionParams

BASELINES = ("colour_hist_logreg", "pixel_logreg")
"""Baseline names, as they appear in ``Evaluation.baselines`` and as candidates."""


class _LogRegModel(ImageModel):
    """A logistic regression on fixed features of the image; subclasses define the features."""

    def __init__(self, classes: list[str], image_size: int, dim: int, seed: int, c: float) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        super().__init__(classes, image_size, dim)
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500, random_state=seed))

    def features(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def fit_images(self, x: np.ndarray, y: np.ndarray) -> "_LogRegModel":
        """Fit on ``(N, S, S, 3)`` uint8 training images and class indices."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        feats = self.features(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0)
        with warnings.catch_warnings():  # a near-separable set stops at max_iter: the fit is still usable
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.pipeline.fit(feats, y)
        self.fitted_classes = self.pipeline.classes_.astype(int)
        return self

    def _scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x.cpu())
        scores = self.pipeline.decision_function(feats)
        if scores.ndim == 1:  # two classes: sklearn returns the positive class's score only
            scores = np.stack([-scores, scores], axis=1) / 2
        logits = torch.full((len(feats), len(self.classes)), -1e9)
        logits[:, torch.from_numpy(self.fitted_classes)] = torch.from_numpy(scores).float()
        return logits, torch.from_numpy(feats).float()


class ColourHistModel(_LogRegModel):
    """Joint RGB histogram (square-rooted) of the image at the model's size."""

    kind = "colour_hist_logreg"

    def __init__(self, classes: list[str], image_size: int, params: VisionParams) -> None:
        super().__init__(classes, image_size, params.histogram_bins ** 3, params.seed, c=1.0)
        self.bins = params.histogram_bins

    def features(self, x: torch.Tensor) -> np.ndarray:
        return colour_histograms(to_uint8(x), self.bins)


class PixelModel(_LogRegModel):
    """Raw pixels at ``pixel_size`` (one channel when every training image is greyscale), standardised."""

    kind = "pixel_logreg"

    def __init__(self, classes: list[str], image_size: int, params: VisionParams, grey: bool) -> None:
        super().__init__(classes, image_size, params.pixel_size ** 2 * (1 if grey else 3), params.seed,
                         c=0.01)
        self.side, self.grey = params.pixel_size, grey

    def features(self, x: torch.Tensor) -> np.ndarray:
        if x.shape[-1] != self.side:
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False, antialias=True)
        if self.grey:
            x = x.mean(dim=1, keepdim=True)
        return x.reshape(len(x), -1).numpy()


def fit_baseline(name: str, classes: list[str], x: np.ndarray, y: np.ndarray, params: VisionParams) -> _LogRegModel:
    """Fit baseline ``name`` (one of :data:`BASELINES`) on ``(N, S, S, 3)`` uint8 images (``S`` becomes the model's
    input side) and class indices."""
    if name == "colour_hist_logreg":
        return ColourHistModel(classes, x.shape[1], params).fit_images(x, y)
    grey = bool(np.all(x[..., 0] == x[..., 1]) and np.all(x[..., 1] == x[..., 2]))
    return PixelModel(classes, x.shape[1], params, grey).fit_images(x, y)
