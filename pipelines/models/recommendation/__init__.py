"""Recommendation: which products will a customer buy (or rate highly) next that they have not seen before?

Implicit feedback from the event log (view 1, add_to_cart 3, purchase 5 by default, optionally decayed with a
half-life) and explicit ratings (at or above ``rating_threshold``: a purchase; below: an interaction, and seen).
Two protocols (``split``): a time split (the novel purchases of the last ``test_days``) or a per-customer random
split (``test_fraction`` of each customer's products, the standard protocol for rating data). The candidates are
the family's model (EASE or a hybrid matrix factorisation in PyTorch, the better on validation) and the popularity
and item-item cosine CF baselines; the one with the best NDCG@10 on a validation split carved from the training
part (same protocol) is fitted on the training part (scored on the holdout and by the gate, per customer) and
refitted on every interaction for serving. Top-K lists never contain products the customer already bought or
rated; unknown customers get a fold-in of given products or popularity. Serving retrieves through a faiss HNSW
inner-product index stored with the logged model; its recall against exact search is logged as
``ann_recall_at_10``.

Oracle: the generator's true choice probabilities (category taste x popularity share within the category x price
tilt), ranked the same way; only the oracle reads the truth. The feature service ``recommendation_v1`` is
declared for lineage; its features say nothing about *which* products or categories a customer likes, so the model
does not consume them (see docs/models/recommendation.md).

Modules: ``params``, ``interactions`` (weighted events, holdout, item features), ``split`` (time and random
protocols), ``data`` (the data set), ``ease`` and ``mf`` (the model's variants; ``mf`` also holds the servable
linear recommender and its ANN index), ``candidates`` (model and baselines in one servable form), ``model``
(selection, fit, holdout frames, MLflow), ``baselines``, ``oracle``, ``metrics``, ``evaluation``, ``plots``,
``serving`` and ``spec`` (the family's ``SPEC``).
"""

from pipelines.models.recommendation.spec import SPEC

__all__ = ["SPEC"]
