"""Holdout evaluation of a recommender against the popularity and item-kNN baselines and the oracle."""

from __future__ import annotations

import numpy as np

from pipelines.models.recommendation.data import RecData
from pipelines.models.recommendation.model import K, RecModel, model_ranking, rank_for_holdout
from pipelines.models.recommendation.params import RecommendationParams
from pipelines.spec import Evaluation


def ann_recall(model, k: int = K) -> float:
    """Mean overlap of the ANN top-``k`` with the exact top-``k`` over every training customer (no exclusions)."""
    from pipelines.models.recommendation.metrics import top_k

    k = min(k, len(model.item_ids))
    queries = model.user_vectors()
    exact = top_k(queries.astype("float64") @ model.item_vectors().astype("float64").T, k)
    approx, _ = model.ann_search(queries, k)
    return float(np.mean([np.isin(e, a).sum() / k for e, a in zip(exact, approx, strict=True)]))


def served_recall(model, data: RecData, k: int = K) -> float:
    """Recall@k of the serving path (``recommend``: ANN + exclusions) of ``model`` (the evaluated one, fitted
    without the holdout) on the holdout."""
    relevant = data.relevant_ids
    hits = [np.isin(rel, [r.product_id for r in model.recommend(c, k)]).sum() / len(rel)
            for c, rel in zip(data.eval_customers, relevant, strict=True)]
    return float(np.mean(hits))


def evaluate(model: RecModel, data: RecData, params: RecommendationParams) -> Evaluation:
    """Ranking metrics of the model, the popularity and item-kNN baselines and (with truth) the oracle, with the
    per-customer frames of the baselines for the gate and the validation scores that chose the candidate.

    Also logs the ANN index's recall against exact search, the recall of the serving path and data counts.
    """
    from pipelines.models.recommendation import baselines, plots
    from pipelines.models.recommendation.metrics import per_user, ranking_metrics

    n_items, rel = data.train.n_items, data.holdout.relevant
    k_max = min(20, n_items)
    rankings = {"model": model_ranking(model, data, k_max)}
    scorers = {"popularity": baselines.popularity_scores, "item_knn": baselines.item_knn_scores}
    for name, scorer in scorers.items():
        rankings[name] = rank_for_holdout(scorer(data.train, data.holdout.users), data.train.item_ids, data, k_max)
    if data.oracle is not None:
        rankings["oracle"] = rank_for_holdout(data.oracle, data.train.item_ids, data, k_max)
    results = {name: ranking_metrics(r, rel, n_items, K) for name, r in rankings.items()}
    primary = f"ndcg_at_{K}"

    metrics = dict(results["model"])
    for name in scorers:
        metrics.update({f"baseline_{name}_{m}": v for m, v in results[name].items() if m != primary})
    if "oracle" in results:
        metrics.update({f"oracle_{m}": v for m, v in results["oracle"].items() if m != primary})
    evaluated = model.evaluated
    metrics.update(
        ann_recall_at_10=ann_recall(evaluated, K),
        served_recall_at_10=served_recall(evaluated, data, K),
        eval_customers=float(len(rel)),
        relevant_items=float(sum(len(r) for r in rel)),
        cold_customers_in_window=float(data.holdout.cold_users),
        repeat_purchases_excluded=float(data.holdout.repeat_purchases),
        train_customers=float(data.train.n_users),
        served_customers=float(len(model.served.user_ids)),
        catalogue_size=float(n_items),
        train_pairs=float(data.train.weights.nnz),
    )
    if evaluated.train_loss:
        metrics["final_train_loss"] = float(evaluated.train_loss[-1])

    figures = {"recall_at_k.png": plots.recall_at_k(rankings, rel, k_max),
               "comparison.png": plots.comparison(results)}
    if evaluated.kind == "mf":
        figures["training_loss.png"] = plots.training_loss(evaluated.train_loss, params.loss)
    if evaluated.user_emb.embedding_dim <= 512:  # a projection of EASE's catalogue-wide vectors says little
        figures["item_embeddings.png"] = plots.item_embeddings(evaluated, data)
    extra = {"split": params.split, "cutoff": str(data.cutoff.date()), "holdout_end": str(data.end.date()),
             "model_kind": evaluated.kind, "candidate_kind": f"{model.candidate}:{evaluated.kind}",
             "item_feature_names": ",".join(data.feature_names) if params.item_features else "none"}
    if getattr(evaluated, "ease_l2", None) is not None:
        extra["ease_l2_used"] = evaluated.ease_l2
    if evaluated.kind == "mf":
        cfg = params.train_config("cpu")
        extra.update({f"{k}_used": getattr(cfg, k) for k in ("epochs", "user_reg", "item_reg")})
    return Evaluation(
        metrics=metrics,
        baselines={name: results[name][primary] for name in scorers},
        oracle=results["oracle"][primary] if "oracle" in results else None,
        figures=figures,
        extra_params=extra,
        units={name: per_user(rankings[name], rel, data.eval_customers, K) for name in scorers},
        candidate=model.candidate,
        selection=dict(model.selection),
    )
