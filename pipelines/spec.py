"""The model-spec contract: everything the generic pipeline, DAGs, CLI, serving and tests need about a family.

A family is one package in ``pipelines/models/`` exporting ``SPEC: ModelSpec``. The generic code in
``pipelines/training.py`` does the plumbing (data context, MLflow run, registration, champion/challenger gate),
so a family only says how to build its data set, fit, score and log its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict

from pipelines.data.schema import FamilyData
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
    units: dict[str, pd.DataFrame] = field(default_factory=dict)
    """Per-unit holdout frames (``ModelSpec.holdout``'s form) of every baseline, keyed by the names of
    ``baselines``: the champion gate's paired bootstrap compares the registered model with them unit by unit."""
    candidate: str = "model"
    """Which candidate the trained (and registered) model is: ``"model"`` (the family's own) or the name of the
    baseline that won the family's selection on its validation split."""
    selection: dict[str, float] = field(default_factory=dict)
    """Primary metric of every candidate on the validation split (never the holdout) that chose ``candidate``."""


def openapi30(schema: Any) -> Any:
    """Rewrite pydantic's JSON Schema (OpenAPI 3.1 dialect) into OpenAPI 3.0: ``anyOf: [X, {type: null}]`` becomes
    ``nullable: true`` and numeric ``exclusiveMinimum``/``exclusiveMaximum`` become the boolean form.

    BentoML publishes an OpenAPI 3.0 document; a ``{"type": "null"}`` schema is only valid from 3.1 on.
    """
    if isinstance(schema, list):
        return [openapi30(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: openapi30(v) for k, v in schema.items()}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), (int, float)) and not isinstance(out[bound], bool):
            out[plain], out[bound] = out[bound], True  # 3.1 number form -> 3.0 boolean form
    if out.get("type") == "file":  # BentoML's file fields; OpenAPI 3.0 spells a file as a binary string
        out["type"], out["format"] = "string", "binary"
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [o for o in options if o != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1 and "$ref" not in rest[0]:
            out = {**rest[0], **out}
        else:
            out["anyOf" if len(rest) > 1 else "allOf"] = rest
        out["nullable"] = True
    return out


class ApiModel(BaseModel):
    """Base of every served request/response model: its schema is valid OpenAPI 3.0."""

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return openapi30(super().model_json_schema(*args, **kwargs))


class ServedItem(ApiModel):
    """One prediction of a list request; A/B routing is per item (sticky on its id), so each says its arm."""

    arm: str = "champion"
    model_version: str = ""
    error: str | None = None
    """Why this item has no prediction (e.g. an unknown id); ``null`` when it has one."""


class ServedResponse(ApiModel):
    """Fields every serving response carries, whatever the family."""

    model: str
    model_version: str
    """Registry version that answered (for a list split across both A/B arms: ``"<champion>,<challenger>"``)."""
    arm: str
    """``champion``, ``challenger``, or ``mixed`` when the items of one list request fell in both arms."""
    experiment_id: str | None = None


@dataclass(frozen=True)
class ServingSpec:
    """How a family is served over HTTP (one shared Bento pattern in ``model_serving/service.py``).

    Attributes:
        request: Pydantic model of the JSON body (field constraints become 400s naming the field).
        response: Pydantic model of the answer; a subclass of :class:`ServedResponse`.
        load: ``(settings, model_uri) -> predictor``: the registered model with its native flavor plus what
            serving needs beside it (online store handle, catalogue, history, index).
        predict: ``(predictor, request) -> dict`` of the family's response fields. Raises
            :class:`pipelines.serving.RequestError` subclasses for bad input (400/404/413), never anything else
            for a client mistake.
        unit_id: The A/B unit of a request (customer id, product id): assignment is sticky on it.
        items_field: For list requests, the request field holding the unit ids (e.g. ``customer_ids``) whose
            items are routed to their own arm; the response's ``predictions`` come back in request order.
        route: HTTP route of the endpoint.
        summary: One line for the OpenAPI description.
    """

    request: type[BaseModel]
    response: type[ServedResponse]
    load: Callable[[Settings, str], Any]
    predict: Callable[[Any, Any], dict[str, Any]]
    unit_id: Callable[[Any], str]
    items_field: str | None = None
    route: str = "/predict"
    summary: str = ""
    example: Callable[[Settings], dict[str, Any]] | None = None
    """A valid request body on the served data (docs, OpenAPI example, smoke and contract tests)."""
    unknown: dict[str, Any] | None = None
    """A request naming an id that cannot exist; answered 404 naming the field (or a fallback, where the family
    has one: recommendation serves popular products to a new customer)."""
    upload_field: str | None = None
    """Request field taking a base64 image; the Bento then also accepts a multipart upload at ``<route>/upload``."""
    explain: Callable[[Any, Any], dict[str, Any]] | None = None
    """``(predictor, ExplainRequest) -> {"margin": ..., "predictions": [...]}``: each customer's top feature
    contributions, served at ``POST /explain`` (e.g. :func:`pipelines.serving.explain_customers`)."""
    inputs: tuple[str, ...] = ()
    """Raw tables of the training batch that ``load`` reads beside the model (e.g. ``("orders",)``): training logs
    them with the model version's run (``serving_inputs/``), and ``load`` reads them through
    :func:`pipelines.serving.serving_context`, so a server needs no local batch, only the registry."""
    ingest: bool = False
    """Also serve ``POST /events``: cart events pushed to the online store (:mod:`pipelines.features.realtime`)."""
    batch_infer: Callable[[Any, Any], Any] | None = None
    """Optional numeric core ``(predictor, stacked_inputs) -> outputs`` shared by concurrent requests through
    adaptive batching; ``predict`` then receives an ``infer`` callable to use for that step."""


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
        serving: How the family is served over HTTP (``None``: not served).
        data: Which tables (data kinds) the family trains on, for imports of your own data.
        holdout: Per-unit holdout results of a model (see the field).
        metric: The primary metric of a per-unit frame (see the field).
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
    serving: ServingSpec | None = None
    data: FamilyData | None = None
    holdout: Callable[[Any, Any], pd.DataFrame] | None = None
    """``(model, data set) -> frame``: the model's holdout results per unit (index = unique unit id: customer,
    user, series, image...), with whatever columns ``metric`` needs (e.g. ``y`` and ``p``)."""
    metric: Callable[[pd.DataFrame], float] | None = None
    """The primary metric computed from a per-unit frame, or from any resample of its rows (the gate's bootstrap)."""
    contributions: Callable[[Any, Any], Any] | None = None
    """``(model, data set) -> (Contributions, inputs)`` on the holdout rows (see :mod:`pipelines.explain`): each
    registered version gets its summary plot (``plots/shap_summary.png``). Raises ``NotExplainable`` for a candidate
    without an exact split."""
    search_space: Callable[[Any], dict[str, Any]] | None = None
    """``(optuna.Trial) -> {param: value}``: what ``shopflow tune`` searches (see :mod:`pipelines.tuning`)."""

    def parse_params(self, overrides: dict[str, Any] | None = None) -> P:
        """Validated params from ``key=value`` overrides (strings are coerced by pydantic)."""
        return self.params.model_validate(overrides or {})

    def better(self, new: float, old: float, min_delta: float = 0.0) -> bool:
        """True when ``new`` beats ``old`` by more than ``min_delta`` in the metric's direction."""
        return new > old + min_delta if self.higher_is_better else new < old - min_delta
