"""The model-spec contract: everything the generic pipeline, DAGs, CLI, serving and tests need about a family.

A family is one module in ``pipelines/models/`` exporting ``SPEC: ModelSpec``. The generic code in
``pipelines/training.py`` does the plumbing (data context, MLflow run, registration, champion/challenger gate),
so a family only says how to build its data set, fit, score and log its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from pipelines.settings import Settings


class ModelParams(BaseModel):
    """Base class of every family's hyper-parameters: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 42


P = TypeVar("P", bound=ModelParams)


@dataclass
class DataContext:
    """What a family may read: the validated batch, its id, and the hidden truth when the generator made it."""

    settings: Settings
    batch_dir: Path
    batch_id: str
    truth_dir: Path | None = None
    _cache: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> pd.DataFrame:
        """A raw table of the batch (read once, cached)."""
        from pipelines.data.io import read_table

        if name not in self._cache:
            self._cache[name] = read_table(self.batch_dir, name)
        return self._cache[name]


@dataclass
class Evaluation:
    """Holdout results of one training run."""

    metrics: dict[str, float]
    """Metrics of the trained model on the holdout; must include the spec's ``primary_metric``."""
    baselines: dict[str, float]
    """Primary metric of each baseline on the same holdout, keyed by baseline name."""
    oracle: float | None
    """Primary metric of the oracle (the generator's truth), or ``None`` where no truth exists."""
    figures: dict[str, Any] = field(default_factory=dict)
    """Matplotlib figures to log, keyed by file name."""
    extra_params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec(Generic[P]):
    """One model family.

    Attributes:
        name: Registered model name in MLflow and the family's id everywhere else.
        params: Pydantic model of the hyper-parameters (``extra="forbid"``).
        feature_service: Feast FeatureService the family trains and serves on.
        primary_metric: Metric the champion/challenger gate compares.
        higher_is_better: Direction of ``primary_metric``.
        prepare: Builds the family's data set (train and holdout) from the data context.
        fit: Trains the model on the data set.
        evaluate: Scores a trained model, its baselines and the oracle on the holdout.
        score: Primary metric of any model of this family (e.g. the current champion) on the holdout.
        log_model: Logs the model with its native MLflow flavor and returns the ``ModelInfo``.
        load_model: Loads a logged model from a ``models:/`` URI with its native flavor.
        description: One line for docs and the run summary.
        resources: Serving/training resource hints (``{"gpu": bool}``).
    """

    name: str
    params: type[P]
    feature_service: str
    primary_metric: str
    higher_is_better: bool
    prepare: Callable[[DataContext, P], Any]
    fit: Callable[[Any, P], Any]
    evaluate: Callable[[Any, Any, P], Evaluation]
    score: Callable[[Any, Any], float]
    log_model: Callable[[Any, Any], Any]
    load_model: Callable[[str], Any]
    description: str = ""
    resources: dict[str, Any] = field(default_factory=lambda: {"gpu": False})

    def parse_params(self, overrides: dict[str, Any] | None = None) -> P:
        """Validated params from ``key=value`` overrides (strings are coerced by pydantic)."""
        return self.params.model_validate(overrides or {})

    def better(self, new: float, old: float, min_delta: float) -> bool:
        """True when ``new`` beats ``old`` by more than ``min_delta`` in the metric's direction."""
        return new > old + min_delta if self.higher_is_better else new < old - min_delta
