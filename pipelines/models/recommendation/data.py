"""The recommendation data set: weighted training interactions and the holdout of the chosen protocol (time or
per-user random split), every interaction (for the served refit), item side features and (generated data only)
the oracle's true choice probabilities."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipelines.data.schema import FamilyData
from pipelines.models.recommendation.params import RecommendationParams
from pipelines.spec import DataContext

if TYPE_CHECKING:
    from pipelines.models.recommendation.interactions import Holdout, Interactions
    from pipelines.models.recommendation.split import Split

FEATURE_SERVICE = "recommendation_v1"

NEEDS = FamilyData((), ("events", "ratings"), kind="implicit events or explicit ratings",
                   note="products are optional (category and price then unused)")
"""What the family needs from a batch (checked by the import, the gate's report and :func:`prepare`)."""


@dataclass
class RecData:
    """The prepared data set: training interactions, the holdout and what the model and the oracle need."""

    train: Interactions
    """Weighted interactions of the training part (time split: before the cutoff)."""
    holdout: Holdout
    """Time split: novel purchases in ``[cutoff, end)`` by customers of ``train``; random split: each customer's
    held-out positives."""
    item_features: np.ndarray
    feature_names: list[str]
    item_category: np.ndarray
    cutoff: pd.Timestamp
    end: pd.Timestamp
    oracle: np.ndarray | None
    """True choice probabilities ``(holdout users, items)``, or ``None`` without the generator's truth."""
    split: Split | None = None
    """The split itself (its training rows give the validation split)."""
    events: pd.DataFrame | None = None
    """Every event (ratings included) and order line: the served model is refit on all of them."""
    orders: pd.DataFrame | None = None

    @property
    def eval_customers(self) -> np.ndarray:
        """Customer id of each holdout row."""
        return self.train.user_ids[self.holdout.users]

    @property
    def relevant_ids(self) -> list[np.ndarray]:
        """Relevant product ids of each holdout row."""
        return [self.train.item_ids[r] for r in self.holdout.relevant]


def prepare(ctx: DataContext, params: RecommendationParams) -> RecData:
    """Split the event log by ``params.split``: at ``snapshot_end - test_days`` into training interactions and a
    purchase holdout, or per customer at random (``test_fraction`` of their products held out).

    Only the oracle reads ``ctx.truth_dir``: the split, the training data and the holdout never depend on it.

    Raises:
        ValueError: when there is no training history or no positive by a known customer to evaluate on.
    """
    from pipelines.data.io import table_path
    from pipelines.data.kinds import require, table_or_empty
    from pipelines.features.build import snapshot_end
    from pipelines.models.recommendation import interactions as rd
    from pipelines.models.recommendation.split import split_log

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
    items = rd.catalogue(products)
    split = split_log(events, orders, items, params.weights(), end, protocol=params.split,
                      test_days=params.test_days, test_fraction=params.test_fraction, seed=params.seed,
                      half_life_days=params.half_life_days or None)
    train, holdout, cutoff = split.train, split.holdout, split.cutoff
    if train.n_users == 0 or train.weights.nnz == 0:
        raise ValueError(f"no weighted events before the cutoff {cutoff.date()}: need history older than "
                         f"test_days={params.test_days} (or non-zero event weights)" if params.split == "time"
                         else "no weighted events to train on (all event weights are zero?)")
    if len(holdout.users) == 0:
        raise ValueError(
            f"no purchase of a new product by a known customer in the last {params.test_days} days "
            f"({cutoff.date()} .. {end.date()}): nothing to evaluate; lower test_days or bring more data"
            if params.split == "time" else
            "no held-out purchase (or rating at or above rating_threshold) by any customer: nothing to evaluate; "
            "raise test_fraction or bring more data")
    feats, names = rd.item_side_features(products, items)
    category = (products.assign(product_id=products["product_id"].astype(str)).drop_duplicates("product_id")
                .set_index("product_id").reindex(items)["category"].astype(str).to_numpy())
    oracle = None
    if ctx.truth_dir is not None:
        from pipelines.data.generator import load_truth
        from pipelines.models.recommendation.oracle import choice_probabilities

        customers_truth, products_truth, _ = load_truth(ctx.truth_dir)
        oracle = choice_probabilities(customers_truth, products_truth, products, train.user_ids[holdout.users],
                                      items)
    return RecData(train, holdout, feats, names, category, cutoff, end, oracle, split, events, orders)
