"""Vision: the category of a product from its pictures, and visually similar products.

A small residual CNN (plain PyTorch, :mod:`pipelines.models.vision.cnn`) classifies product pictures into
categories; its embedding (L2-normalised) powers exact cosine similarity search over the catalogue.

Data (only the batch's own labelled pictures; the generator's renderer and hidden truth are never used): every
product's catalogue photo (``products.image_file``) plus any more views of it (``views/<product_id>/*.png``; the
generator draws six per product). Units are pictures; the split is by product and by time: within each category
the newest products are held out for the gate, the next newest form the validation set, the rest train
(all views of a product stay together). Every training epoch sees heavily augmented, class-balanced copies.

Candidates: the CNN and the baselines — logistic regressions on colour histograms and on raw pixels. Each is
scored on the validation pictures (macro-F1), the best is refit on the whole training part and registered; a
baseline winner is an :class:`~pipelines.models.vision.classifier.ImageModel` too, logged and served the same way.
Training settings (width, epochs, batch size, augmentation strength) scale with the number of training pictures
(:func:`pipelines.models.vision.params.schedule`) unless set.

Metrics on the holdout: macro-F1 (primary; per picture, so the gate's bootstrap resamples pictures), accuracy and
recall@10 of the catalogue search. No oracle: the category label is known exactly, so ``oracle`` is ``None``.

Modules: ``params``, ``data``, ``images`` (I/O and preprocessing), ``augment``, ``classifier`` (the registered
model's interface), ``cnn``, ``train``, ``baselines``, ``model`` (selection, fit, MLflow), ``metrics``,
``evaluation``, ``plots``, ``serving`` and ``spec``. ``images``, ``augment``, ``classifier``, ``cnn`` and
``baselines`` import torch at module level, so the modules that ``spec`` imports reach them only inside functions.
"""

from pipelines.models.vision.spec import SPEC

__all__ = ["SPEC"]
