"""Serving of the churn family: churn probability of each requested customer from online Feast features and the
customer attributes kept with the model version."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.models.churn.data import FEATURE_SERVICE
from pipelines.models.churn.model import ChurnModel, load_model
from pipelines.serving import CustomerIds, FeastPredictor, batch_values, feast_predictor
from pipelines.spec import ApiModel, ServedItem, ServedResponse, ServingSpec


class ChurnRequest(ApiModel):
    customer_ids: CustomerIds


class ChurnPrediction(ServedItem):
    customer_id: str
    churn_probability: float | None = Field(ge=0, le=1, description="Null for an unknown customer (see error).")


class ChurnResponse(ServedResponse):
    feature_service: str
    predictions: list[ChurnPrediction]


@dataclass
class ChurnPredictor:
    """Scores customers on their online Feast features and the attributes kept with the model version.

    A customer is known when the online store has features for them or the version has their attributes; a missing
    part is NaN (as in training, where a customer without a snapshot has null features).
    """

    model: ChurnModel
    feast: FeastPredictor | None
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _attrs: pd.DataFrame | None = field(default=None, repr=False)
    _fast: tuple | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from pipelines.data.attributes import model_input

        attrs = self.model.attributes
        if attrs is not None and (self.model.numeric or self.model.categorical):
            self._attrs = model_input(attrs, self.model.numeric, self.model.categorical).reset_index(drop=True)
            self._index = {str(c): i for i, c in enumerate(attrs.index)}
        self._fast = self._compile()

    def _compile(self) -> tuple | None:
        """The encoding step as array indexing, when it has the shape trees get from ``preprocessor(scale=False)``.

        Per request, scikit-learn's ``ColumnTransformer`` on a one-row frame costs about 1.7 ms, 7x the
        classifier itself. With numeric columns passed through and one-hot categorical columns that come only from
        the attributes kept with the version, the encoded row is the online features, the customer's numeric
        attributes and their one-hot block, all encoded once here by the fitted encoder itself. Any other shape (a
        scaled linear model) keeps the pipeline. ``(attribute numbers, one-hot rows, one-hot row of a missing
        customer, classifier)`` or None.
        """
        from sklearn.compose import ColumnTransformer
        from sklearn.preprocessing import OneHotEncoder

        from pipelines.data.attributes import MISSING

        steps = getattr(self.model.estimator, "steps", None)
        if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
            return None
        m = self.model
        encode = steps[0][1]
        # The declared parts (a fitted 'passthrough' shows as a FunctionTransformer in `transformers_`).
        parts = [(t, list(c)) for _, t, c in encode.transformers if not (isinstance(t, str) and t == "drop")]
        want = [("passthrough", [*m.features, *m.numeric])] if (m.features or m.numeric) else []
        if m.categorical:
            want.append((OneHotEncoder, list(m.categorical)))
        if len(parts) != len(want) or any(
                (t != kind if isinstance(kind, str) else not isinstance(t, kind)) or cols != wcols
                for (t, cols), (kind, wcols) in zip(parts, want)):
            return None
        n = len(self._index)
        numbers = (self._attrs[m.numeric].to_numpy(dtype="float64") if self._attrs is not None
                   else np.empty((n, 0)))
        if not m.categorical:
            return numbers, np.empty((n, 0)), np.empty(0), steps[1][1]
        onehot = encode.named_transformers_[encode.transformers[-1][0]]
        cat = self._attrs[m.categorical]
        missing = pd.DataFrame([[MISSING] * len(m.categorical)], columns=m.categorical)
        return numbers, onehot.transform(cat), onehot.transform(missing)[0], steps[1][1]

    def _encoded(self, customer_ids) -> tuple[np.ndarray, np.ndarray]:
        """``(encoded rows, known)`` through the compiled encoding (see :meth:`_compile`)."""
        numbers, onehot, onehot_missing, _ = self._fast
        ids = [str(c) for c in customer_ids]
        blocks, known = [], np.zeros(len(ids), dtype=bool)
        if self.feast is not None:
            x, online = self.feast.rows(ids)
            x = np.asarray(x, dtype="float64")
            x[~online] = np.nan
            known |= online
            blocks.append(x)
        if numbers.shape[1] or onehot.shape[1]:
            pos = np.array([self._index.get(c, -1) for c in ids], dtype=np.int64)
            has = pos >= 0
            known |= has
            at = np.where(has, pos, 0)
            blocks.append(np.where(has[:, None], numbers[at], np.nan))
            blocks.append(np.where(has[:, None], onehot[at], onehot_missing[None, :]))
        return np.hstack(blocks) if blocks else np.empty((len(ids), 0)), known

    def rows(self, customer_ids) -> tuple[pd.DataFrame, np.ndarray]:
        """``(X, known)``: the model's input rows for the customers, in order, and which of them are known."""
        ids = [str(c) for c in customer_ids]
        known = np.zeros(len(ids), dtype=bool)
        parts = []
        if self.feast is not None:
            x, online = self.feast.rows(ids)
            x[~online] = np.nan
            known |= online
            parts.append(pd.DataFrame(x, columns=self.model.features))
        if self._attrs is not None:
            pos = np.array([self._index.get(c, -1) for c in ids], dtype=np.int64)
            has = pos >= 0
            known |= has
            block = self._attrs.iloc[np.where(has, pos, 0)].reset_index(drop=True)
            if not has.all():
                from pipelines.data.attributes import MISSING

                block.loc[~has, self.model.numeric] = np.nan
                block.loc[~has, self.model.categorical] = MISSING
            parts.append(block)
        return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=range(len(ids))), known

    def infer_ids(self, customer_ids) -> np.ndarray:
        """Churn probability per customer id; NaN for an unknown customer (only that item fails)."""
        if self._fast is not None:
            x, known = self._encoded(customer_ids)
            out = np.full(len(x), np.nan)
            if known.any():
                out[known] = self._fast[3].predict_proba(x[known])[:, 1]
            return out
        x, known = self.rows(customer_ids)
        out = np.full(len(x), np.nan)
        if known.any():
            out[known] = self.model.estimator.predict_proba(x[known])[:, 1]
        return out


def serve_load(settings, uri: str) -> ChurnPredictor:
    model = load_model(uri)
    booster = model.estimator.steps[-1][1]
    if "n_jobs" in booster.get_params():
        # Served batches are small: one thread answers in microseconds, a thread pool costs milliseconds.
        booster.set_params(n_jobs=1)
    feast = feast_predictor(settings, None, model.features, FEATURE_SERVICE) if model.features else None
    return ChurnPredictor(model, feast)


def serve_infer(predictor: ChurnPredictor, customer_ids: np.ndarray) -> np.ndarray:
    """The batchable core: online features, attributes and churn probability for stacked ids (NaN if unknown)."""
    return predictor.infer_ids(customer_ids)


def serve_predict(predictor, request: ChurnRequest, infer) -> dict:
    probs = infer(np.asarray(request.customer_ids, dtype=object))
    return {"feature_service": FEATURE_SERVICE,
            "predictions": FeastPredictor.items(request.customer_ids, probs, "churn_probability")}


def serve_explain(predictor: ChurnPredictor, request) -> dict:
    """Each customer's top contributions to the log-odds, per input column (a one-hot attribute's columns summed)."""
    from pipelines.serving import explain_rows

    x, known = predictor.rows(request.customer_ids)
    return explain_rows(predictor.model.estimator, predictor.model.inputs(x), known, request)


SERVING = ServingSpec(
    request=ChurnRequest, response=ChurnResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.customer_ids[0], items_field="customer_ids", batch_infer=serve_infer,
    explain=serve_explain,
    example=lambda s: {"customer_ids": batch_values(s, "customers", "customer_id")},
    unknown={"customer_ids": ["C_DOES_NOT_EXIST"]},
    summary="Churn probability of each customer over the model's horizon.",
)
