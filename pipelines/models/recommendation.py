"""Recommendation: which products will a customer buy next that they have not bought before?

Implicit feedback from the event log (view 1, add_to_cart 3, purchase 5 by default, optionally decayed with a
half-life) before a cutoff ``test_days`` before the data's end trains a hybrid matrix factorisation in PyTorch:
customer embeddings against item vectors made of an id embedding plus a projection of the product's category and
relative price (softmax over the catalogue by default, graded BPR with ``--set loss=bpr``). Top-K lists never
contain products the customer already bought; unknown customers get a fold-in of given products or popularity.
Serving retrieves through a faiss HNSW inner-product index stored with the logged model
(``MFRecommender.recommend(customer_id, k)``); its recall against exact search is logged as ``ann_recall_at_10``.

Holdout: purchases in the last ``test_days`` by customers seen in training, of products they had not bought
before the cutoff. Baselines: popularity and item-item cosine CF. Oracle: the generator's true choice
probabilities (category taste x popularity share within the category x price tilt), ranked the same way.
The feature service ``recommendation_v1`` is declared for lineage; its features (activity counts, number of
categories, top-category share) say nothing about *which* products or categories a customer likes, so the model
does not consume them (see docs/models/recommendation.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from pipelines.serving import batch_values
from pipelines.data.schema import FamilyData
from pipelines.spec import ApiModel, DataContext, Evaluation, ModelParams, ModelSpec, ServedResponse, ServingSpec
from pipelines.utils import pinned_requirements

if TYPE_CHECKING:
    from pipelines.recsys.data import Holdout, Interactions
    from pipelines.recsys.model import MFRecommender, TrainConfig

FEATURE_SERVICE = "recommendation_v1"
K = 10
"""List length of the metrics (the primary metric is recall@10)."""

_DEFAULT_REG = {"softmax": (0.1, 1.0), "bpr": (0.01, 0.1)}
_DEFAULT_EPOCHS = {"softmax": 60, "bpr": 20}


class RecommendationParams(ModelParams):
    """Hyper-parameters of the recommender (override with ``--set key=value``)."""

    test_days: int = Field(28, ge=7, le=180, description="Holdout window at the end of the data, in days.")
    weight_view: float = Field(1.0, ge=0)
    weight_cart: float = Field(3.0, ge=0)
    weight_purchase: float = Field(5.0, ge=0)
    half_life_days: float = Field(0.0, ge=0, description="Time decay of event weights; 0 disables it.")
    rating_threshold: float = Field(4.0, ge=1, le=5, description=(
        "Explicit ratings: a rating at or above this is a positive (trained on like a purchase, relevant in the "
        "holdout); lower ratings are not positives."))
    loss: Literal["softmax", "bpr"] = "softmax"
    dim: int = Field(32, ge=2, le=512)
    epochs: int | None = Field(None, ge=1, le=1000, description="Default: 60 (softmax) or 20 (bpr).")
    lr: float = Field(0.05, gt=0, le=1)
    user_reg: float | None = Field(None, ge=0, description="L2 on customer embeddings; default per loss.")
    item_reg: float | None = Field(None, ge=0, description="L2 on item-id embeddings; default per loss "
                                                           "(equal to user_reg without item features).")
    batch_size: int = Field(256, ge=8, le=65536)
    n_negatives: int = Field(8, ge=1, le=256, description="Negatives per positive pair (bpr only).")
    item_features: bool = Field(True, description="Item tower uses category and relative price.")
    hnsw_m: int = Field(16, ge=4, le=128)
    ef_search: int = Field(64, ge=1, le=4096)

    def train_config(self, device: str) -> TrainConfig:
        """Optimisation settings with the per-loss defaults filled in."""
        from pipelines.recsys.model import TrainConfig

        user_reg, item_reg = _DEFAULT_REG[self.loss]
        if not self.item_features:
            item_reg = user_reg  # without side features the id embeddings carry everything: no extra shrinkage
        return TrainConfig(
            loss=self.loss, epochs=self.epochs or _DEFAULT_EPOCHS[self.loss], lr=self.lr,
            user_reg=user_reg if self.user_reg is None else self.user_reg,
            item_reg=item_reg if self.item_reg is None else self.item_reg,
            batch_size=self.batch_size, n_negatives=self.n_negatives, seed=self.seed, device=device,
        )


@dataclass
class RecData:
    """The prepared data set: training interactions, the holdout and what the model and the oracle need."""

    train: Interactions
    """Weighted interactions and purchases before the cutoff."""
    holdout: Holdout
    """Novel purchases in ``[cutoff, end)`` by customers of ``train``."""
    item_features: np.ndarray
    feature_names: list[str]
    item_category: np.ndarray
    cutoff: pd.Timestamp
    end: pd.Timestamp
    oracle: np.ndarray | None
    """True choice probabilities ``(holdout users, items)``, or ``None`` without the generator's truth."""

    @property
    def eval_customers(self) -> np.ndarray:
        """Customer id of each holdout row."""
        return self.train.user_ids[self.holdout.users]

    @property
    def relevant_ids(self) -> list[np.ndarray]:
        """Relevant product ids of each holdout row."""
        return [self.train.item_ids[r] for r in self.holdout.relevant]


def prepare(ctx: DataContext, params: RecommendationParams) -> RecData:
    """Split the event log at ``snapshot_end - test_days`` into training interactions and a purchase holdout.

    Raises:
        ValueError: when there is no training history or no novel purchase by a known customer to evaluate on.
    """
    from pipelines.data.io import table_path
    from pipelines.data.kinds import require, table_or_empty
    from pipelines.features.build import snapshot_end
    from pipelines.recsys import data as rd

    require(ctx, "recommendation")
    events, orders = table_or_empty(ctx, "events"), table_or_empty(ctx, "orders")
    ratings = table_or_empty(ctx, "ratings")
    if not ratings.empty:
        events = pd.concat([events, rd.ratings_as_events(ratings, params.rating_threshold)], ignore_index=True)
    if table_path(ctx.batch_dir, "products") is not None:
        products = ctx.table("products")
    else:  # events or ratings alone: the catalogue is what they name, without category or price
        products = rd.bare_catalogue(events, orders)
    end = snapshot_end(events, orders)
    cutoff = end - pd.Timedelta(days=params.test_days)
    items = rd.catalogue(products)
    weights = {"view": params.weight_view, "add_to_cart": params.weight_cart, "purchase": params.weight_purchase}
    train = rd.build_interactions(events, orders, items, cutoff, weights, params.half_life_days or None)
    if train.n_users == 0 or train.weights.nnz == 0:
        raise ValueError(f"no weighted events before the cutoff {cutoff.date()}: need history older than "
                         f"test_days={params.test_days} (or non-zero event weights)")
    holdout = rd.build_holdout(events, orders, train, cutoff, end)
    if len(holdout.users) == 0:
        raise ValueError(f"no purchase of a new product by a known customer in the last {params.test_days} days "
                         f"({cutoff.date()} .. {end.date()}): nothing to evaluate; lower test_days or bring more data")
    feats, names = rd.item_side_features(products, items)
    category = (products.assign(product_id=products["product_id"].astype(str)).drop_duplicates("product_id")
                .set_index("product_id").reindex(items)["category"].astype(str).to_numpy())
    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.data.generator import load_truth
        from pipelines.recsys.oracle import choice_probabilities

        customers_truth, products_truth, _ = load_truth(ctx.truth_dir)
        oracle = choice_probabilities(customers_truth, products_truth, products, train.user_ids[holdout.users],
                                      items)
    return RecData(train, holdout, feats, names, category, cutoff, end, oracle)


def fit(data: RecData, params: RecommendationParams) -> MFRecommender:
    """Train the hybrid MF on the training interactions and build its HNSW index (model ends on the CPU)."""
    from pipelines.recsys.data import popularity
    from pipelines.recsys.model import MFRecommender, train
    from pipelines.utils import pick_device

    model = MFRecommender(data.train.user_ids, data.train.item_ids, params.dim, data.train.bought,
                          popularity(data.train), data.item_features if params.item_features else None,
                          seed=params.seed)
    model.train_loss = train(model, data.train.weights, params.train_config(pick_device()))
    model.build_index(hnsw_m=params.hnsw_m, ef_search=params.ef_search)
    return model


def rank_for_holdout(scores: np.ndarray, score_items: np.ndarray, data: RecData, k: int = K) -> np.ndarray:
    """Top-``k`` of ``data``'s item indices per holdout customer, excluding what each bought before the cutoff.

    Args:
        scores: ``(holdout customers, len(score_items))`` scores, higher first.
        score_items: Product id of each score column (a model's catalogue may differ from the data's).
        data: The prepared data set.
        k: List length.
    """
    from pipelines.recsys.metrics import top_k

    full = np.full((len(scores), data.train.n_items), -np.inf)
    col = pd.Index(data.train.item_ids).get_indexer(np.asarray(score_items, dtype=str))
    full[:, col[col >= 0]] = scores[:, col >= 0]
    return top_k(full, k, data.train.bought[data.holdout.users])


def model_ranking(model, data: RecData, k: int = K) -> np.ndarray:
    """Exact (brute-force) top-``k`` of ``model`` for the holdout customers, mapped by customer and product id."""
    return rank_for_holdout(model.score_customers(data.eval_customers), model.item_ids, data, k)


def score(model, data: RecData) -> float:
    """Recall@10 of any recommender of this family (matched by customer and product id) on the holdout."""
    from pipelines.recsys.metrics import recall_at_k

    return recall_at_k(model_ranking(model, data), data.holdout.relevant, K)


def ann_recall(model, k: int = K) -> float:
    """Mean overlap of the ANN top-``k`` with the exact top-``k`` over every training customer (no exclusions)."""
    from pipelines.recsys.metrics import top_k

    k = min(k, len(model.item_ids))
    queries = model.user_vectors()
    exact = top_k(queries.astype("float64") @ model.item_vectors().astype("float64").T, k)
    approx, _ = model.ann_search(queries, k)
    return float(np.mean([np.isin(e, a).sum() / k for e, a in zip(exact, approx, strict=True)]))


def served_recall(model, data: RecData, k: int = K) -> float:
    """Recall@k of the serving path (``recommend``: ANN + exclusions) on the holdout."""
    relevant = data.relevant_ids
    hits = [np.isin(rel, [r.product_id for r in model.recommend(c, k)]).sum() / len(rel)
            for c, rel in zip(data.eval_customers, relevant, strict=True)]
    return float(np.mean(hits))


def evaluate(model, data: RecData, params: RecommendationParams) -> Evaluation:
    """Ranking metrics of the model, the popularity and item-kNN baselines and (with truth) the oracle.

    Also logs the ANN index's recall against exact search, the recall of the serving path and data counts.
    """
    import matplotlib.pyplot as plt

    from pipelines.recsys import baselines
    from pipelines.recsys.metrics import ranking_metrics, recall_curve

    n_items, rel = data.train.n_items, data.holdout.relevant
    k_max = min(20, n_items)
    rankings = {"model": model_ranking(model, data, k_max)}
    scorers = {"popularity": baselines.popularity_scores, "item_knn": baselines.item_knn_scores}
    for name, scorer in scorers.items():
        rankings[name] = rank_for_holdout(scorer(data.train, data.holdout.users), data.train.item_ids, data, k_max)
    if data.oracle is not None:
        rankings["oracle"] = rank_for_holdout(data.oracle, data.train.item_ids, data, k_max)
    results = {name: ranking_metrics(r, rel, n_items, K) for name, r in rankings.items()}

    metrics = dict(results["model"])
    for name in scorers:
        metrics.update({f"baseline_{name}_{m}": v for m, v in results[name].items() if m != f"recall_at_{K}"})
    if "oracle" in results:
        metrics.update({f"oracle_{m}": v for m, v in results["oracle"].items() if m != f"recall_at_{K}"})
    metrics.update(
        ann_recall_at_10=ann_recall(model, K),
        served_recall_at_10=served_recall(model, data, K),
        eval_customers=float(len(rel)),
        relevant_items=float(sum(len(r) for r in rel)),
        cold_customers_in_window=float(data.holdout.cold_users),
        repeat_purchases_excluded=float(data.holdout.repeat_purchases),
        train_customers=float(data.train.n_users),
        catalogue_size=float(n_items),
        train_pairs=float(data.train.weights.nnz),
        final_train_loss=float(model.train_loss[-1]),
    )

    cfg = params.train_config("cpu")
    ks = np.arange(1, k_max + 1)
    curve_fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in rankings.items():
        ax.plot(ks, recall_curve(r, rel, k_max), marker=".", label=name)
    ax.axvline(K, color="k", ls=":", lw=1)
    ax.set(xlabel="K", ylabel="recall@K", title="Recall@K on the holdout (novel purchases)")
    ax.legend()

    loss_fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(np.arange(1, len(model.train_loss) + 1), model.train_loss)
    ax.set(xlabel="epoch", ylabel=f"{params.loss} loss (train)", title="Training loss")

    emb_fig = _embedding_figure(model, data)

    bar_fig, ax = plt.subplots(figsize=(6, 4))
    names = list(results)
    x = np.arange(len(names))
    for offset, m in ((-0.2, f"recall_at_{K}"), (0.2, f"ndcg_at_{K}")):
        ax.bar(x + offset, [results[n][m] for n in names], width=0.4, label=m)
    ax.set_xticks(x, names)
    ax.set(title="Model vs baselines vs oracle (holdout)")
    ax.legend()

    return Evaluation(
        metrics=metrics,
        baselines={name: results[name][f"recall_at_{K}"] for name in scorers},
        oracle=results["oracle"][f"recall_at_{K}"] if "oracle" in results else None,
        figures={"recall_at_k.png": curve_fig, "training_loss.png": loss_fig, "item_embeddings.png": emb_fig,
                 "comparison.png": bar_fig},
        extra_params={"cutoff": str(data.cutoff.date()), "holdout_end": str(data.end.date()),
                      **{f"{k}_used": getattr(cfg, k) for k in ("epochs", "user_reg", "item_reg")},
                      "item_feature_names": ",".join(data.feature_names) if params.item_features else "none"},
    )


def _embedding_figure(model, data: RecData):
    """Item vectors projected on their first two principal components, coloured by category."""
    import matplotlib.pyplot as plt

    v = model.item_vectors()[:, :-1].astype("float64")
    v = v - v.mean(axis=0)
    coords = v @ np.linalg.svd(v, full_matrices=False)[2][:2].T if len(v) > 1 else np.zeros((len(v), 2))
    fig, ax = plt.subplots(figsize=(6, 5))
    category = pd.Series(data.item_category, index=data.train.item_ids).reindex(model.item_ids).fillna("unknown")
    for cat in sorted(category.unique()):
        mask = (category == cat).to_numpy()
        ax.scatter(coords[mask, 0], coords[mask, 1], s=20, label=cat)
    ax.set(xlabel="PC 1", ylabel="PC 2", title="Item vectors by category")
    ax.legend(fontsize=7, ncol=2)
    return fig


def _requirements() -> list[str]:
    """Runtime requirements (inference would miss the lazily imported faiss)."""
    return pinned_requirements("mlflow", "torch", "numpy", "scipy", "faiss-cpu")


def log_model(model, data: RecData):
    """Log the weights as MLflow's safe ``pt2`` (torch.export) PyTorch flavor, the rest as pickle-free extra files.

    The exported program scores customer rows against the catalogue (``(n,) int64 -> (n, items) float32``), so
    the pyfunc flavor serves without ShopFlow's code; :func:`load_model` rebuilds the full
    :class:`~pipelines.recsys.model.MFRecommender` (with ``recommend``) from the same artifact.
    """
    import tempfile
    from pathlib import Path

    import mlflow
    import torch
    from mlflow.models import infer_signature

    example = np.arange(min(3, data.train.n_users), dtype=np.int64)
    with torch.no_grad():
        output = model(torch.from_numpy(example)).numpy()
    with tempfile.TemporaryDirectory() as tmp:
        files = model.save_state(Path(tmp))
        return mlflow.pytorch.log_model(model, name="model", signature=infer_signature(example, output),
                                        input_example=example, serialization_format="pt2",
                                        extra_files=[str(f) for f in files], pip_requirements=_requirements())


def load_model(uri: str):
    """The logged recommender, with its id maps, purchase history, popularity fallback and ANN index."""
    from pathlib import Path

    import mlflow

    from pipelines.recsys.model import MFRecommender

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    exported = mlflow.pytorch.load_model(str(local), map_location="cpu")
    return MFRecommender.from_state(exported.state_dict(), local / "extra_files")


# ------------------------------------------------------------------------------------------------ serving

ProductIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=500)]


class RecommendRequest(ApiModel):
    customer_id: str = Field(min_length=1, max_length=64)
    k: int = Field(K, ge=1, le=100, description="Number of products.")
    recent_products: ProductIds = Field(default_factory=list,
                                        description="Products a new customer interacted with (cold start).")
    exclude: ProductIds = Field(default_factory=list, description="Products not to recommend.")


class RecommendedProduct(ApiModel):
    product_id: str
    score: float
    source: Literal["personal", "history", "popular"]


class RecommendResponse(ServedResponse):
    customer_id: str
    recommendations: list[RecommendedProduct]


def serve_predict(model, request: RecommendRequest) -> dict:
    """Top-k from the ANN index, never an already-bought product; new customers fall back to history/popularity."""
    recs = model.recommend(request.customer_id, k=request.k, recent_products=request.recent_products,
                           exclude=request.exclude)
    return {"customer_id": request.customer_id,
            "recommendations": [{"product_id": r.product_id, "score": r.score, "source": r.source} for r in recs]}


SERVING = ServingSpec(
    request=RecommendRequest, response=RecommendResponse, load=lambda settings, uri: load_model(uri),
    predict=serve_predict, unit_id=lambda r: r.customer_id, route="/recommend",
    example=lambda s: {"customer_id": batch_values(s, "orders", "customer_id", 1)[0], "k": 5},
    unknown={"customer_id": "C_DOES_NOT_EXIST", "k": 5},
    summary="Top-k products for a customer (personal, from recent products, or popular for new customers).",
)

SPEC = ModelSpec(
    name="recommendation",
    params=RecommendationParams,
    feature_service=FEATURE_SERVICE,
    primary_metric="recall_at_10",
    higher_is_better=True,
    prepare=prepare,
    fit=fit,
    evaluate=evaluate,
    score=score,
    log_model=log_model,
    load_model=load_model,
    description="Hybrid matrix factorisation (PyTorch) on implicit feedback with a faiss HNSW index for top-K.",
    serving=SERVING,
    resources={"gpu": True},
    data=FamilyData((), ("events", "ratings"), kind="implicit events or explicit ratings",
                    note="products are optional (category and price then unused)"),
)
