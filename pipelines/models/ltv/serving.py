"""Serving of the LTV family: expected spend of each customer from online Feast features and purchase summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.models.ltv.data import ATTRIBUTE_PREFIX, FEATURE_SERVICE, attribute_features
from pipelines.models.ltv.model import load_model
from pipelines.serving import CustomerIds, batch_values, feast_predictor
from pipelines.spec import ApiModel, DataContext, ServedItem, ServedResponse, ServingSpec


class LTVRequest(ApiModel):
    customer_ids: CustomerIds


class LTVPrediction(ServedItem):
    customer_id: str
    expected_spend: float | None = Field(ge=0, description="Spend over the model's horizon (the registered "
                                         "candidate's forecast: see the model card); null for an unknown customer "
                                         "(see error).")


class LTVResponse(ServedResponse):
    horizon_days: int
    as_of: str = Field(description="Date the purchase summaries are taken at (end of the served data).")
    predictions: list[LTVPrediction]


def serve_load(settings, uri: str):
    """The model plus every customer's purchase summary at the end of its training batch (its non-Feast inputs,
    logged with the model version: see ``inputs`` below)."""
    from pipelines.models.ltv.regressor import summary_features
    from pipelines.features.build import snapshot_end
    from pipelines.serving import serving_context

    model = load_model(uri)
    ctx = serving_context(settings, uri)
    orders = ctx.table("orders")
    events = ctx.table("events") if "events" in _tables(ctx) else orders.iloc[:0].rename(
        columns={"order_ts": "event_ts"})
    end = snapshot_end(events, orders)
    ids = pd.Index(orders["customer_id"].astype(str).unique())
    summaries = summary_features(orders, end, ids, int(model.horizon_days)).set_index(ids)
    attrs = [c for c in model.feature_names_in_ if str(c).startswith(ATTRIBUTE_PREFIX)]
    if attrs:  # the same columns as in training, from the customers table logged with the version
        summaries = summaries.join(attribute_features(ctx).reindex(columns=attrs))
    predictor = feast_predictor(settings, model, list(model.feature_names_in_), FEATURE_SERVICE, extra=summaries)
    predictor.horizon_days = int(getattr(model, "horizon_days", 0) or 0)
    predictor.as_of = str(end.date())
    return predictor


def _tables(ctx: DataContext) -> set[str]:
    return {p.stem for p in ctx.batch_dir.iterdir()}


def serve_infer(predictor, customer_ids: np.ndarray) -> np.ndarray:
    """The batchable core: online features and expected spend for stacked customer ids (NaN if unknown)."""
    return predictor.infer_ids(customer_ids, lambda x: np.clip(
        predictor.model.predict(pd.DataFrame(x, columns=predictor.features)), 0, None))


def serve_predict(predictor, request: LTVRequest, infer) -> dict:
    spend = infer(np.asarray(request.customer_ids, dtype=object))
    return {"horizon_days": predictor.horizon_days, "as_of": predictor.as_of,
            "predictions": predictor.items(request.customer_ids, spend, "expected_spend")}


def log_spend_split(model, frame: pd.DataFrame):
    """Each row's log expected spend split exactly: the trees' TreeSHAP terms (XGBoost, Tweedie log link), the
    BG/NBD + Gamma-Gamma prior they start from (``btyd_prior``), and a bias (with the calibration scale).

    Returns:
        ``(Contributions, inputs)``.

    Raises:
        NotExplainable: the registered candidate is not the hybrid (trees on the prior).
    """
    from pipelines.explain import Contributions, NotExplainable, contributions

    if getattr(model, "kind", None) != "hybrid":
        raise NotExplainable(f"the registered LTV candidate ({getattr(model, 'kind', '?')}) has no per-feature "
                             "split; only the hybrid (trees on the BTYD prior) has")
    z = model._with_prior(frame)
    trees = list(model.tree_features_)
    c = contributions(model.booster_, z[trees].to_numpy(dtype="float64"), trees)
    prior = np.log(np.maximum(z["btyd_spend"].to_numpy(dtype="float64"), model.prior_floor))
    # Trees were fitted on the prior as base margin: log expected = log(scale) + log(prior) + the trees' margin.
    scale = np.log(model.total_scale * model.level_[0])
    split = Contributions([*trees, "btyd_prior"], np.column_stack([c.values, prior]), c.bias + scale,
                          c.margin + prior + scale)
    return split, z[trees].assign(btyd_prior=z["btyd_spend"])


def contributions(model, data):
    """``ModelSpec.contributions``: the split of every holdout customer's log expected spend."""
    from pipelines.models.ltv.model import inputs

    return log_spend_split(model, inputs(model, data.holdout))


def serve_explain(predictor, request) -> dict:
    """``POST /explain``: :func:`log_spend_split` of each requested customer."""
    from pipelines.explain import NotExplainable
    from pipelines.serving import explain_items, not_explainable

    x, known = predictor.rows(list(request.customer_ids))
    try:
        split, inputs = log_spend_split(predictor.model, pd.DataFrame(x[known], columns=predictor.features))
    except NotExplainable as exc:
        return not_explainable(list(request.customer_ids), exc)
    return explain_items(list(request.customer_ids), known, split, inputs.to_numpy(dtype=object), request.top,
                         "log expected spend")


SERVING = ServingSpec(
    request=LTVRequest, response=LTVResponse, load=serve_load, predict=serve_predict,
    unit_id=lambda r: r.customer_ids[0], items_field="customer_ids", batch_infer=serve_infer,
    explain=serve_explain,
    inputs=("orders", "events", "customers"),
    example=lambda s: {"customer_ids": batch_values(s, "orders", "customer_id")},
    unknown={"customer_ids": ["C_DOES_NOT_EXIST"]},
    summary="Expected spend of each customer over the model's horizon.",
)
