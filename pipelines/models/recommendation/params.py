"""Hyper-parameters of the recommendation family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from pipelines.spec import ModelParams

if TYPE_CHECKING:
    from pipelines.models.recommendation.mf import TrainConfig

_DEFAULT_REG = {"softmax": (0.1, 1.0), "bpr": (0.01, 0.1)}
_DEFAULT_EPOCHS = {"softmax": 60, "bpr": 20}


class RecommendationParams(ModelParams):
    """Hyper-parameters of the recommender (override with ``--set key=value``)."""

    split: Literal["time", "random"] = Field("time", description=(
        "Evaluation protocol: 'time' holds out the novel purchases of the last test_days; 'random' holds out "
        "test_fraction of each customer's products at random (the standard protocol for rating data)."))
    test_days: int = Field(28, ge=7, le=180, description="Holdout window at the end of the data, in days (time).")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="Share of each customer's products held out "
                                                               "(random split).")
    algorithm: Literal["auto", "ease", "mf"] = Field("auto", description=(
        "The family's model: 'ease' (closed-form item-item linear autoencoder), 'mf' (hybrid matrix "
        "factorisation), 'auto': the better of the two on the validation split (EASE only up to ease_max_items "
        "products)."))
    ease_max_items: int = Field(5000, ge=1, le=20000, description="Largest catalogue EASE is tried on (auto).")
    ease_l2: float | None = Field(None, gt=0, description=(
        "EASE L2 as a multiple of the mean diagonal of the item Gram matrix; default: chosen on the validation "
        "split among 0.5, 1, 2, 5, 10 and 20."))
    weight_view: float = Field(1.0, ge=0)
    weight_cart: float = Field(3.0, ge=0)
    weight_purchase: float = Field(5.0, ge=0)
    half_life_days: float = Field(0.0, ge=0, description="Time decay of event weights; 0 disables it.")
    rating_threshold: float = Field(4.0, ge=1, le=5, description=(
        "Explicit ratings: a rating at or above this is a positive (trained on like a purchase, relevant in the "
        "holdout); lower ratings are interactions (weight_rating_low) but not positives. Every rated product is "
        "seen: never recommended back."))
    weight_rating_low: float = Field(1.0, ge=0, description="Weight of a rating below rating_threshold.")
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
    hnsw_m: int = Field(64, ge=4, le=128, description="HNSW graph degree (M).")
    ef_search: int = Field(48, ge=1, le=4096, description=(
        "HNSW search breadth; with M 64 (efConstruction 300) it keeps recall@10 >= 0.95 at 100,000 items while "
        "searching >= 10x faster than exact on one thread (docs/benchmarks.md)."))

    def weights(self) -> dict[str, float]:
        """Weight of each event type (``rated``: a rating below the threshold)."""
        return {"view": self.weight_view, "add_to_cart": self.weight_cart, "purchase": self.weight_purchase,
                "rated": self.weight_rating_low}

    def variants(self, n_items: int) -> tuple[str, ...]:
        """The model variants tried on the validation split for a catalogue of ``n_items`` products."""
        if self.algorithm != "auto":
            return (self.algorithm,)
        return ("ease", "mf") if n_items <= self.ease_max_items else ("mf",)

    def train_config(self, device: str) -> TrainConfig:
        """Optimisation settings with the per-loss defaults filled in."""
        from pipelines.models.recommendation.mf import TrainConfig

        user_reg, item_reg = _DEFAULT_REG[self.loss]
        if not self.item_features:
            item_reg = user_reg  # without side features the id embeddings carry everything: no extra shrinkage
        return TrainConfig(
            loss=self.loss, epochs=self.epochs or _DEFAULT_EPOCHS[self.loss], lr=self.lr,
            user_reg=user_reg if self.user_reg is None else self.user_reg,
            item_reg=item_reg if self.item_reg is None else self.item_reg,
            batch_size=self.batch_size, n_negatives=self.n_negatives, seed=self.seed, device=device,
        )
