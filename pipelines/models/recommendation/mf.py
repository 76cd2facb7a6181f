"""Hybrid matrix-factorisation recommender (PyTorch) with a faiss ANN index, and its training loops.

Score of customer ``u`` for product ``i``: ``<p_u, q_i> + b_i``, where the item tower is an id embedding plus a
linear map of the product's side features (``q_i = e_i + W x_i``, ``b_i = c_i + w . x_i``). Retrieval runs
maximum-inner-product search on ``[q_i, b_i]`` with the query ``[p_u, 1]``, so the ANN index ranks like the model.
Everything serving needs (id maps, purchase history, popularity fallback, ANN index) is held by the module and
persisted without pickle (:meth:`MFRecommender.save_state` / :meth:`MFRecommender.from_state`) next to the
weights, so the rebuilt object answers :meth:`MFRecommender.recommend` on its own.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import sparse
from torch import nn

from pipelines.utils import torch_threads

log = logging.getLogger(__name__)

EF_CONSTRUCTION = 300
"""HNSW build breadth: with M 32 and efSearch 128 the index keeps recall@10 >= 0.95 against exact search on
100,000 random items while answering over 10x faster (scripts/bench_load.py, docs/benchmarks.md)."""

STATE_FILE = "recsys_state.npz"
INDEX_FILE = "ann_index.faiss"


@dataclass(frozen=True)
class Recommendation:
    """One recommended product."""

    product_id: str
    score: float
    source: str
    """``personal`` (the customer's embedding), ``history`` (fold-in of given products) or ``popular``."""


class MFRecommender(nn.Module):
    """User and item embeddings plus an item bias, with the state needed to serve ``recommend``.

    Args:
        user_ids: Customer id of each embedding row.
        item_ids: Product id of each item row (the catalogue).
        dim: Embedding size.
        bought: ``(users, items)`` purchases before training's cutoff; never recommended back.
        popularity: Fallback ranking for unknown customers (higher first).
        item_features: ``(items, f)`` side features of the item tower, or ``None`` for plain MF.
        init_std: Standard deviation of the initial embeddings.
        seed: Seed of the initial embeddings.
    """

    item_features: torch.Tensor

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray, dim: int, bought: sparse.csr_matrix,
                 popularity: np.ndarray, item_features: np.ndarray | None = None, init_std: float = 0.1,
                 seed: int = 42):
        super().__init__()
        self.user_emb = nn.Embedding(len(user_ids), dim)
        self.item_emb = nn.Embedding(len(item_ids), dim)
        self.item_bias = nn.Embedding(len(item_ids), 1)
        feats = np.zeros((len(item_ids), 0)) if item_features is None else np.asarray(item_features)
        self.register_buffer("item_features", torch.as_tensor(feats, dtype=torch.float32))
        # Item tower: id embedding + a linear map of the item's side features (category, relative price), so
        # products share what their category and price level say and the id part only learns the rest.
        with warnings.catch_warnings():  # no side features: a zero-width map, whose init warns for nothing
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            self.feature_proj = nn.Linear(feats.shape[1], dim + 1, bias=False)
        gen = torch.Generator().manual_seed(seed)  # own stream: the init does not depend on global RNG state
        with torch.no_grad():
            self.user_emb.weight.normal_(0.0, init_std, generator=gen)
            self.item_emb.weight.normal_(0.0, init_std, generator=gen)
            self.feature_proj.weight.normal_(0.0, init_std, generator=gen)
        nn.init.zeros_(self.item_bias.weight)
        self.user_ids = np.asarray(user_ids, dtype=str)
        self.item_ids = np.asarray(item_ids, dtype=str)
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {p: i for i, p in enumerate(self.item_ids)}
        bought = sparse.csr_matrix(bought)
        self.bought_indptr = bought.indptr.astype(np.int64)
        self.bought_indices = bought.indices.astype(np.int64)
        self.popularity = np.asarray(popularity, dtype="float64")
        self.index_blob: np.ndarray | None = None
        self.fold_in = "mean"
        """How an unknown customer's ``recent_products`` become a query: ``mean`` of their item vectors (MF),
        ``indicator`` (item-based models, whose customer vector is their row of products) or ``none``."""
        self.kind = "mf"
        """Which candidate this is (``mf``, ``ease``, ``item_knn``, ``popularity``)."""
        self.ef_search = 64
        self.train_loss: list[float] = []
        self._index: Any = None

    @classmethod
    def from_vectors(cls, kind: str, user_ids: np.ndarray, item_ids: np.ndarray, users: np.ndarray,
                     items: np.ndarray, bought: sparse.csr_matrix, popularity: np.ndarray,
                     fold_in: str = "indicator") -> MFRecommender:
        """Any linear recommender ``score(u, i) = <users[u], items[i]>`` (EASE, item-kNN, popularity) in this
        form, so that every candidate is logged, loaded and served (ANN index included) the same way."""
        model = cls(user_ids, item_ids, users.shape[1], bought, popularity)
        with torch.no_grad():
            model.user_emb.weight.copy_(torch.as_tensor(users, dtype=torch.float32))
            model.item_emb.weight.copy_(torch.as_tensor(items, dtype=torch.float32))
        model.kind, model.fold_in = kind, fold_in
        model.eval()
        return model

    # ----------------------------------------------------------------------------------------------- scoring
    def item_tower(self, items: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Item vectors ``q_i`` and biases ``b_i`` (all items, or the indices ``items``)."""
        side = self.feature_proj(self.item_features if items is None else self.item_features[items])
        emb = self.item_emb.weight if items is None else self.item_emb(items)
        bias = self.item_bias.weight if items is None else self.item_bias(items)
        return emb + side[..., :-1], (bias + side[..., -1:]).squeeze(-1)

    def forward(self, users: torch.Tensor) -> torch.Tensor:
        """Scores ``(len(users), n_items)`` for embedding rows ``users`` (the pyfunc entry point)."""
        users = users.long().reshape(-1)
        q, b = self.item_tower()
        return self.user_emb(users) @ q.T + b[None, :]

    def item_vectors(self) -> np.ndarray:
        """``[q_i, b_i]`` per item, float32 (the ANN index's database)."""
        with torch.no_grad():
            q, b = self.item_tower()
            return torch.cat([q, b[:, None]], dim=1).detach().cpu().numpy().astype("float32")

    def user_vectors(self, rows: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """``[p_u, 1]`` per customer row (all rows by default), float32 (the ANN queries)."""
        with torch.no_grad():
            p = self.user_emb.weight.detach().cpu().numpy()
        p = p if rows is None else p[np.asarray(rows, dtype=np.int64)]
        return np.hstack([p, np.ones((len(p), 1), dtype=p.dtype)]).astype("float32")

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Exact scores of every item for customer rows ``rows`` (brute force, float64)."""
        return self.user_vectors(rows).astype("float64") @ self.item_vectors().astype("float64").T

    def bought_items(self, row: int) -> np.ndarray:
        """Item indices customer ``row`` purchased before the training cutoff."""
        return self.bought_indices[self.bought_indptr[row]:self.bought_indptr[row + 1]]

    def score_customers(self, customer_ids: list[str] | np.ndarray) -> np.ndarray:
        """Exact scores ``(len(customer_ids), n_items)``; unknown customers get the popularity ranking's scores."""
        ids = np.asarray(customer_ids, dtype=str)
        rows = np.array([self.user_index.get(c, -1) for c in ids], dtype=np.int64)
        out = np.tile(self.popularity, (len(ids), 1))
        known = rows >= 0
        if known.any():
            out[known] = self.scores(rows[known])
        return out

    # -------------------------------------------------------------------------------------------------- ANN
    def build_index(self, hnsw_m: int = 64, ef_construction: int = EF_CONSTRUCTION, ef_search: int = 48) -> None:
        """Build the HNSW inner-product index over the item vectors and keep it serialised on the module."""
        import faiss

        vectors = self.item_vectors()
        index = faiss.IndexHNSWFlat(vectors.shape[1], hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        # One thread: HNSW insertion order (hence the graph) then depends on nothing but the data.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            index.add(vectors)
        finally:
            faiss.omp_set_num_threads(threads)
        self.index_blob = faiss.serialize_index(index)
        self.ef_search = ef_search
        self._index = index

    def ann_index(self):
        """The faiss index (deserialised once per process)."""
        if self._index is None:
            if self.index_blob is None:
                raise RuntimeError("no ANN index: call build_index() first")
            import faiss

            self._index = faiss.deserialize_index(self.index_blob)
        return self._index

    def ann_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` item indices and scores for query vectors ``[p, 1]`` (``-1`` pads)."""
        index = self.ann_index()
        k = min(k, len(self.item_ids))
        index.hnsw.efSearch = max(self.ef_search, k)
        scores, ids = index.search(np.ascontiguousarray(queries, dtype="float32"), k)
        return ids, scores

    def __getstate__(self):
        state = dict(super().__getstate__())
        state["_index"] = None  # SWIG objects do not pickle; index_blob holds the index
        return state

    # ------------------------------------------------------------------------------------------ persistence
    def save_state(self, folder: Path, prefix: str = "") -> list[Path]:
        """Write everything but the weights as pickle-free files: ``recsys_state.npz`` and ``ann_index.faiss``.

        The weights travel in the MLflow ``pt2`` (``torch.export``) artifact; :meth:`from_state` joins both.
        """
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = folder / f"{prefix}{STATE_FILE}"
        np.savez(
            state, user_ids=self.user_ids.astype(str), item_ids=self.item_ids.astype(str),
            bought_indptr=self.bought_indptr, bought_indices=self.bought_indices, popularity=self.popularity,
            item_features=self.item_features.detach().cpu().numpy(), ef_search=np.array(self.ef_search),
            train_loss=np.asarray(self.train_loss, dtype="float64"), fold_in=np.array(self.fold_in),
            kind=np.array(self.kind),
        )
        index = folder / f"{prefix}{INDEX_FILE}"
        faiss.write_index(self.ann_index(), str(index))
        return [state, index]

    @classmethod
    def from_state(cls, weights: dict[str, torch.Tensor], folder: Path, prefix: str = "") -> MFRecommender:
        """Rebuild a model from its weights (a ``state_dict``) and the files of :meth:`save_state`."""
        import faiss

        folder = Path(folder)
        with np.load(folder / f"{prefix}{STATE_FILE}", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        bought = sparse.csr_matrix((np.ones(len(arrays["bought_indices"]), dtype="float32"),
                                    arrays["bought_indices"], arrays["bought_indptr"]), shape=(n_users, n_items))
        feats = arrays["item_features"]
        model = cls(arrays["user_ids"], arrays["item_ids"], int(weights["user_emb.weight"].shape[1]), bought,
                    arrays["popularity"], feats if feats.shape[1] else None)
        model.load_state_dict({k: v.detach().cpu() for k, v in weights.items()})
        model.eval()
        model.train_loss = arrays["train_loss"].tolist()
        model.ef_search = int(arrays["ef_search"])
        model.fold_in, model.kind = str(arrays.get("fold_in", "mean")), str(arrays.get("kind", "mf"))
        index = faiss.read_index(str(folder / f"{prefix}{INDEX_FILE}"))
        model.index_blob = faiss.serialize_index(index)
        model._index = index
        return model

    # ---------------------------------------------------------------------------------------------- serving
    def recommend(self, customer_id: str, k: int = 10, recent_products: list[str] | None = None,
                  exclude: list[str] | None = None) -> list[Recommendation]:
        """Top-``k`` products for a customer, never one they already bought.

        Known customers are ranked by their embedding through the ANN index. An unknown customer is folded in
        from ``recent_products`` (the mean of those products' vectors) when given, else gets the most popular
        products. Purchases before the training cutoff and any ``exclude`` products are filtered out.

        Args:
            customer_id: Customer to recommend for.
            k: Number of products (fewer only when the catalogue runs out).
            recent_products: Products an unknown customer interacted with (ignored for known customers).
            exclude: Further product ids not to recommend (e.g. bought since training).

        Returns:
            Up to ``k`` recommendations, best first.
        """
        if k <= 0:
            return []
        row = self.user_index.get(str(customer_id))
        banned = {self.item_index[p] for p in (exclude or []) if p in self.item_index}
        if row is not None:
            banned.update(self.bought_items(row).tolist())
            query, source = self.user_vectors([row]), "personal"
        else:
            known = [self.item_index[p] for p in (recent_products or []) if p in self.item_index]
            if known and self.fold_in != "none":
                if self.fold_in == "indicator":
                    items = np.zeros(self.user_emb.embedding_dim, dtype="float32")
                    items[known] = 1.0
                else:
                    items = self.item_vectors()[known, :-1].mean(axis=0)
                query, source = np.append(items, 1.0).astype("float32")[None, :], "history"
            else:
                return self._popular(k, banned)
        ids, scores = self.ann_search(query, k + len(banned))
        out = [Recommendation(str(self.item_ids[i]), float(s), source)
               for i, s in zip(ids[0], scores[0], strict=True) if i >= 0 and i not in banned]
        if len(out) < k:  # HNSW may return fewer hits than asked; top up from popularity
            have = banned | {self.item_index[r.product_id] for r in out}
            out += self._popular(k - len(out), have)
        return out[:k]

    def _popular(self, k: int, banned: set[int]) -> list[Recommendation]:
        order = np.argsort(-self.popularity, kind="stable")
        picks = [i for i in order if i not in banned][:k]
        return [Recommendation(str(self.item_ids[i]), float(self.popularity[i]), "popular") for i in picks]


# ---------------------------------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Optimisation settings of :func:`train` (see ``RecommendationParams`` for their meaning)."""

    loss: str = "softmax"
    epochs: int = 60
    lr: float = 0.05
    user_reg: float = 0.1
    item_reg: float = 1.0
    batch_size: int = 256
    n_negatives: int = 8
    seed: int = 42
    device: str = "cpu"
    num_threads: int = 1


def train(model: MFRecommender, weights: sparse.csr_matrix, cfg: TrainConfig) -> list[float]:
    """Fit the model on the training matrix (then move it to the CPU) and return the mean loss of each epoch.

    ``softmax``: multinomial likelihood of the weighted interactions over the full catalogue, every (weighted)
    event counting once; the generator's purchase choice is exactly such a softmax over products, and the
    catalogues here are small enough to normalise exactly. ``bpr``: graded BPR; for each observed (customer,
    item) pair and ``n_negatives`` uniformly drawn items ``j``, maximise ``log sigmoid(s_ui - s_uj)`` wherever
    ``w_ui > w_uj`` (a purchase beats a view, which beats nothing).
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    w = weights.tocsr().astype("float32")
    step = _softmax_epoch if cfg.loss == "softmax" else _bpr_epoch
    history = []
    t0 = time.perf_counter()
    # The matrices are tiny: one intra-op thread (see torch_threads) is faster here and reproducible.
    with torch_threads(cfg.num_threads):
        for epoch in range(cfg.epochs):
            model.train()
            history.append(step(model, opt, w, cfg, gen))
            if epoch % 20 == 0 or epoch == cfg.epochs - 1:
                log.debug("epoch %d loss %.4f (%.1f s)", epoch, history[-1], time.perf_counter() - t0)
    model.eval()
    model.to("cpu")
    log.info("trained %s MF for %d epochs in %.1f s (final loss %.4f)", cfg.loss, cfg.epochs,
             time.perf_counter() - t0, history[-1])
    return history


def _l2(model: MFRecommender, users: torch.Tensor, items: torch.Tensor | None, cfg: TrainConfig) -> torch.Tensor:
    """L2 penalty on the id embeddings touched by a batch (mean per row, so it does not grow with the batch).

    The item-id part gets its own, stronger, weight: products then lean on their side features (category,
    relative price) and depart from them only where the data insist.
    """
    reg = cfg.user_reg * model.user_emb(users).pow(2).sum(1).mean()
    q = model.item_emb.weight if items is None else model.item_emb(items)
    return reg + cfg.item_reg * q.pow(2).sum(1).mean()


def _softmax_epoch(model, opt, w: sparse.csr_matrix, cfg: TrainConfig, gen: torch.Generator) -> float:
    n_users = w.shape[0]
    # Dividing by the mean weight per customer keeps the loss scale (hence the regularisers) independent of the
    # event weights and of the shop's size.
    scale = float(w.sum()) / max(n_users, 1) or 1.0
    perm = torch.randperm(n_users, generator=gen).numpy()
    total, seen = 0.0, 0
    for start in range(0, n_users, cfg.batch_size):
        rows = perm[start:start + cfg.batch_size]
        target = torch.from_numpy(w[rows].toarray()).to(cfg.device) / scale
        users = torch.from_numpy(rows.astype(np.int64)).to(cfg.device)
        nll = -(target * torch.log_softmax(model(users), dim=1)).sum(1).mean()
        loss = nll + _l2(model, users, None, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(nll.detach()) * len(rows)
        seen += len(rows)
    return total / max(seen, 1)


def _bpr_epoch(model, opt, w: sparse.csr_matrix, cfg: TrainConfig, gen: torch.Generator) -> float:
    coo = w.tocoo()
    n_pairs, n_items = coo.nnz, w.shape[1]
    perm = torch.randperm(n_pairs, generator=gen)
    u_all = torch.from_numpy(coo.row.astype(np.int64))[perm]
    i_all = torch.from_numpy(coo.col.astype(np.int64))[perm]
    wi_all = torch.from_numpy(coo.data.astype("float32"))[perm]
    dense = torch.from_numpy(w.toarray())  # users x items; catalogues are small
    batch = cfg.batch_size * 8  # pairs are many and cheap; bigger batches keep an epoch short
    total, seen = 0.0, 0
    for start in range(0, n_pairs, batch):
        u, i, wi = u_all[start:start + batch], i_all[start:start + batch], wi_all[start:start + batch]
        j = torch.randint(0, n_items, (len(u), cfg.n_negatives), generator=gen)
        mask = (wi[:, None] > dense[u[:, None], j]).float()
        u_d, i_d, j_d, mask = u.to(cfg.device), i.to(cfg.device), j.to(cfg.device), mask.to(cfg.device)
        p = model.user_emb(u_d)
        q_i, b_i = model.item_tower(i_d)
        q_j, b_j = model.item_tower(j_d)
        s_i = (p * q_i).sum(1) + b_i
        s_j = (p[:, None, :] * q_j).sum(2) + b_j
        pair = -torch.nn.functional.logsigmoid(s_i[:, None] - s_j) * mask
        bpr = pair.sum() / mask.sum().clamp_min(1.0)
        loss = bpr + _l2(model, u_d, torch.cat([i_d, j_d.reshape(-1)]), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += float(bpr.detach()) * len(u)
        seen += len(u)
    return total / max(seen, 1)
