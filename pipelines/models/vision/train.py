"""The training loop of the vision CNN: augmented, class-balanced draws of the training images.

SGD with Nesterov momentum and a one-cycle learning rate, label smoothing, cutout and channels-last tensors: the
mix that trains small residual nets fastest per CPU second.
"""

from __future__ import annotations

import logging

import numpy as np

from pipelines.models.vision.params import VisionParams, schedule

log = logging.getLogger(__name__)


def balanced_indices(y: np.ndarray, n: int, n_classes: int, generator) -> np.ndarray:
    """``n`` training indices with every class equally often, each class cycling through its own images."""
    import torch

    per_class = -(-n // n_classes)
    chunks = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        if members.size == 0:
            continue
        reps = -(-per_class // members.size)
        perms = [members[torch.randperm(members.size, generator=generator).numpy()] for _ in range(reps)]
        chunks.append(np.concatenate(perms)[:per_class])
    idx = np.concatenate(chunks)
    return idx[torch.randperm(idx.size, generator=generator).numpy()][:n]


def to_float(x: np.ndarray):
    """``(N, S, S, 3)`` uint8 -> float ``(N, 3, S, S)`` in [0, 1]."""
    import torch

    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0


def _loss_acc(model, x, y) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on float images ``x`` (eval mode, no augmentation)."""
    import torch

    logits, _ = model._run(x)
    target = torch.as_tensor(y)
    return (float(torch.nn.functional.cross_entropy(logits, target)),
            float((logits.argmax(1) == target).float().mean()))


def train(classes: list[str], train_x: np.ndarray, train_y: np.ndarray, params: VisionParams,
          val: tuple[np.ndarray, np.ndarray] | None = None, warm=None):
    """Train the CNN on ``(N, S, S, 3)`` uint8 images (call through :func:`pipelines.models.vision.model.fit`,
    which sets the torch threads). ``val`` only feeds the learning curves.

    ``warm``: a trained CNN to continue from (the refit on the whole training part after selection): a quarter of
    the epochs at a tenth of the peak learning rate, instead of training again from scratch.
    """
    import torch

    from pipelines.models.vision.augment import AugmentConfig, augment
    from pipelines.models.vision.cnn import ProductVisionModel
    from pipelines.utils import pick_device

    plan = schedule(params, len(train_x))
    device = torch.device(pick_device())
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    x, y = to_float(train_x), torch.from_numpy(train_y)
    if warm is None:
        model = ProductVisionModel(classes, train_x.shape[1], plan.width, params.embedding_dim, params.dropout)
        model.set_normalisation(x)
        epochs, lr = plan.epochs, params.learning_rate * plan.batch_size / 128  # linear scaling around batch 128
    else:
        model = warm
        epochs, lr = max(1, round(plan.epochs / 4)), params.learning_rate * plan.batch_size / 128 / 10
    model.to(device).to(memory_format=torch.channels_last)
    cfg = AugmentConfig.scaled(plan.augment, params.p_grey, plan.p_erase)
    steps_per_epoch = -(-plan.samples_per_epoch // plan.batch_size)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=params.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.25)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)
    val_x = to_float(val[0]) if val is not None and len(val[0]) else None
    history: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_accuracy", "val_loss", "val_accuracy")}
    for _ in range(epochs):
        model.train()
        idx = balanced_indices(train_y, plan.samples_per_epoch, len(classes), gen)
        total, correct, seen = 0.0, 0, 0
        for start in range(0, idx.size, plan.batch_size):
            b = torch.from_numpy(idx[start:start + plan.batch_size])
            xb = augment(x[b].to(device), cfg, gen).contiguous(memory_format=torch.channels_last)
            yb = y[b].to(device)
            logits, _ = model.encode(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(b)
        history["train_loss"].append(total / seen)
        history["train_accuracy"].append(correct / seen)
        if val_x is not None:
            v_loss, v_acc = _loss_acc(model, val_x, val[1])
            history["val_loss"].append(v_loss)
            history["val_accuracy"].append(v_acc)
        log.debug("vision epoch %d: %s", len(history["train_loss"]), {k: v[-1] for k, v in history.items() if v})
    model.eval()
    model.history = {k: v for k, v in history.items() if v}
    return model
