"""MovieLens-100k (inside the ``recbole`` wheel) through ShopFlow's recommendation family.

Protocol (the field's standard one for this data set, as in Microsoft's `recommenders` benchmarks): a per-user
random 75/25 split of the ratings (seed 42); every held-out rating is relevant (binary NDCG@10, the ideal list
being min(|relevant|, 10) hits); each user's training ratings are excluded from their list. The user imports the
75% as a ``ratings`` table (ratings >= 4 are positives, the rest still interactions and *seen*), trains with
``--set split=random`` (ShopFlow's own holdout and validation are carved from the imported part; the served
model is refit on all of it) and asks ``POST /recommend`` for every test user over HTTP, passing the user's
whole history as ``exclude``. The classic baselines of the field (popularity, BPR-MF, SAR, item-kNN) are fitted
here on the same 75% and scored on the same 25%.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from realdata import Protocol, Result, UserPath, pip_member

RECBOLE = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"
TRAIN_SHARE = 0.75
SEED = 42
K = 10
TARGET = 0.44


def load(cache: Path) -> pd.DataFrame:
    """MovieLens-100k ratings: ``user, item, rating, ts`` (ids as strings, ts in seconds)."""
    df = pd.read_csv(pip_member(cache, RECBOLE, MEMBER), sep="\t")
    df.columns = ["user", "item", "rating", "ts"]
    return df.astype({"user": str, "item": str, "rating": float, "ts": int})


def per_user_split(df: pd.DataFrame, share: float = TRAIN_SHARE, seed: int = SEED) -> tuple[pd.DataFrame,
                                                                                             pd.DataFrame]:
    """Each user's ratings shuffled with ``seed``; the first ``round(share * n)`` train, the rest test."""
    shuffled = df.sample(frac=1.0, random_state=seed)
    rank = shuffled.groupby("user").cumcount().to_numpy()
    size = shuffled.groupby("user")["user"].transform("size").to_numpy()
    train = rank < np.round(share * size)
    return shuffled[train].reset_index(drop=True), shuffled[~train].reset_index(drop=True)


# ------------------------------------------------------------------ metric and baselines on the same split
def ndcg(ranked: dict[str, list[str]], test: pd.DataFrame, k: int = K) -> float:
    """Mean binary NDCG@k over the test users (every held-out item relevant)."""
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    out = []
    for user, rel in test.groupby("user")["item"]:
        rel = set(rel)
        top = ranked.get(user, [])[:k]
        dcg = sum(disc[i] for i, item in enumerate(top) if item in rel)
        out.append(dcg / disc[:min(len(rel), k)].sum())
    return float(np.mean(out))


class Matrix:
    """The training ratings as a users x items 0/1 matrix (ids sorted)."""

    def __init__(self, train: pd.DataFrame):
        self.users, self.items = np.sort(train["user"].unique()), np.sort(train["item"].unique())
        self.rows = np.searchsorted(self.users, train["user"].to_numpy())
        self.cols = np.searchsorted(self.items, train["item"].to_numpy())
        self.x = np.zeros((len(self.users), len(self.items)))
        self.x[self.rows, self.cols] = 1.0

    def top(self, scores: np.ndarray, users: np.ndarray, k: int = K) -> dict[str, list[str]]:
        scores = np.where(self.x > 0, -np.inf, scores)  # never a training item
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        index = {u: i for i, u in enumerate(self.users)}
        return {u: self.items[order[index[u]]].tolist() for u in users if u in index}


def popularity(m: Matrix) -> np.ndarray:
    return np.tile(m.x.sum(axis=0), (len(m.users), 1))


def item_knn(m: Matrix) -> np.ndarray:
    """Item-item cosine CF on the 0/1 matrix."""
    gram = m.x.T @ m.x
    norms = np.sqrt(np.diag(gram))
    sim = gram / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(sim, 0.0)
    return m.x @ sim


def sar(m: Matrix, train: pd.DataFrame, half_life_days: float = 30.0) -> np.ndarray:
    """SAR (Microsoft): Jaccard item similarity of co-occurrence counts, affinities decayed with a 30-day
    half-life from the newest rating (the settings of the `recommenders` MovieLens benchmark)."""
    cooc = m.x.T @ m.x
    diag = np.diag(cooc)
    sim = cooc / np.maximum(diag[:, None] + diag[None, :] - cooc, 1e-12)
    age = (train["ts"].max() - train["ts"].to_numpy()) / 86400.0
    aff = np.zeros_like(m.x)
    np.add.at(aff, (m.rows, m.cols), train["rating"].to_numpy() * np.power(0.5, age / half_life_days))
    return aff @ sim


def bpr(m: Matrix, dim: int = 64, epochs: int = 60, lr: float = 0.01, reg: float = 1e-4,
        seed: int = SEED) -> np.ndarray:
    """BPR-MF (Rendle et al. 2009): one uniformly drawn negative per positive, Adam, L2 on the batch's vectors."""
    import torch

    torch.set_num_threads(1)  # small matrices: more threads only spin on a shared machine
    gen = torch.Generator().manual_seed(seed)
    users, items = torch.from_numpy(m.rows.astype(np.int64)), torch.from_numpy(m.cols.astype(np.int64))
    p = torch.nn.Parameter(torch.randn(len(m.users), dim, generator=gen) * 0.01)
    q = torch.nn.Parameter(torch.randn(len(m.items), dim, generator=gen) * 0.01)
    b = torch.nn.Parameter(torch.zeros(len(m.items)))
    opt = torch.optim.Adam([p, q, b], lr=lr)
    seen = torch.from_numpy(m.x > 0)
    for _ in range(epochs):
        perm = torch.randperm(len(users), generator=gen)
        for start in range(0, len(users), 1024):
            idx = perm[start:start + 1024]
            u, i = users[idx], items[idx]
            j = torch.randint(0, len(m.items), (len(idx),), generator=gen)
            keep = ~seen[u, j]
            u, i, j = u[keep], i[keep], j[keep]
            diff = (p[u] * (q[i] - q[j])).sum(1) + b[i] - b[j]
            loss = -torch.nn.functional.logsigmoid(diff).mean() + reg * (
                p[u].pow(2).sum() + q[i].pow(2).sum() + q[j].pow(2).sum()) / len(u)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return (p @ q.T + b).numpy()


# ------------------------------------------------------------------ the user path
def write_import(train: pd.DataFrame, folder: Path) -> Path:
    """The training ratings as a user would import them (``ratings.csv``)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "customer_id": "U" + train["user"], "product_id": "M" + train["item"], "rating": train["rating"],
        "ts": pd.to_datetime(train["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }).to_csv(folder / "ratings.csv", index=False)
    return folder


def make_current(user: UserPath) -> None:
    """``shopflow validate`` only accepts the batch (pending); the user makes it CURRENT (features built)."""
    import json

    status = json.loads(user.shopflow("data", "list", "--json"))
    if status.get("pending"):
        user.shopflow("data", "use", status["pending"], "--reason", "MovieLens-100k training part")


def run(user: UserPath, cache: Path, work: Path) -> Result:
    df = load(cache)
    train, test = per_user_split(df)
    user.import_validate(write_import(train, work / "import"), historical=True)
    make_current(user)
    summary = user.train("recommendation", split="random")
    history = ("M" + train["item"]).groupby("U" + train["user"]).apply(list).to_dict()
    ranked: dict[str, list[str]] = {}
    t0 = time.perf_counter()
    with user.serve("recommendation") as served:
        for uid in sorted(test["user"].unique()):
            cid = "U" + uid
            body = {"customer_id": cid, "k": K, "exclude": history.get(cid, [])}
            recs = served.post("/recommend", body)["recommendations"]
            ranked[uid] = [r["product_id"][1:] for r in recs]
    http_seconds = time.perf_counter() - t0
    leaked = sum(len(set(r) & set(train.loc[train["user"] == u, "item"])) for u, r in ranked.items())
    shopflow = ndcg(ranked, test)

    m = Matrix(train)
    users = np.sort(test["user"].unique())
    baselines = {name: ndcg(m.top(scores, users), test) for name, scores in (
        ("popularity", popularity(m)), ("bpr", bpr(m)), ("sar", sar(m, train)), ("item_knn", item_knn(m)))}
    return Result(
        family="recommendation", dataset="MovieLens-100k (recbole 1.2.1 wheel)",
        protocol="75/25 per-user random split (seed 42), all held-out ratings relevant, served model over HTTP",
        metric="ndcg_at_10", shopflow=shopflow, baselines=baselines, target=f">= {TARGET}",
        passed=shopflow >= TARGET and leaked == 0,
        extra={"candidate": f"{summary.get('candidate')} "
                            f"({summary.get('selection', {}).get('model_ease', float('nan')):.4f} ease / "
                            f"{summary.get('selection', {}).get('model_mf', float('nan')):.4f} mf on validation)",
               "shopflow holdout ndcg_at_10 (positives)": float(summary["value"]),
               "test users": float(len(users)), "recommended training items": float(leaked),
               "HTTP seconds (all users)": http_seconds},
    )


PROTOCOLS = [Protocol(family="recommendation", dataset="MovieLens-100k", run=run)]
