"""Vision family: preprocessing, augmentation and generator units; a model trained on a generated shop (gate
contract, truth never read, the CNN against its best baseline); own-data training.

One generated shop (300 customers: 40 products, 6 views each) and one hand-drawn catalogue are trained once per
module.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from pipelines.data.generator import CATEGORIES, generate
from pipelines.data.importer import import_batch
from pipelines.data.product_images import STYLE, VIEWS_PER_PRODUCT, render_views
from pipelines.models.vision.augment import AugmentConfig, augment
from pipelines.models.vision.baselines import BASELINES, fit_baseline
from pipelines.models.vision.data import prepare, split_by_product
from pipelines.models.vision.evaluation import evaluate
from pipelines.models.vision.images import as_image_list, colour_histograms, load_image, to_tensor
from pipelines.models.vision.metrics import frame_metric, holdout_frame, macro_f1, retrieval_at_k, retrieval_ceiling
from pipelines.models.vision.model import CANDIDATES, fit, load_model, log_model, score
from pipelines.models.vision.params import VisionParams, schedule
from pipelines.models.vision.serving import SimilarRequest, serve_predict
from pipelines.models.vision.train import balanced_indices
from pipelines.promotion import select_candidate
from pipelines.settings import Settings
from pipelines.spec import DataContext

FAST = {"epochs": 8, "samples_per_epoch": 768}
"""A little less training than the defaults, to keep the file fast; still enough for a reliable model."""


# ---------------------------------------------------------------------------------------------------------------
# Units: preprocessing
# ---------------------------------------------------------------------------------------------------------------


def test_to_tensor_accepts_any_size_and_mode():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # RGB at model size
        rng.integers(0, 256, (64, 64), dtype=np.uint8),  # greyscale, larger
        rng.integers(0, 256, (20, 50, 1), dtype=np.uint8),  # greyscale with channel axis, not square
        rng.integers(0, 256, (17, 17, 4), dtype=np.uint8),  # RGBA, smaller
    ]
    x = to_tensor(images, 32)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert torch.allclose(x[0], torch.from_numpy(images[0]).permute(2, 0, 1) / 255.0)  # same size: untouched
    assert torch.equal(x[1][0], x[1][1]) and torch.equal(x[1][1], x[1][2])  # grey -> equal channels


def test_transparent_pixels_become_white_and_padding_keeps_shapes():
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    assert torch.allclose(to_tensor(rgba, 16), torch.ones(1, 3, 16, 16))
    # A wide image is padded with its border colour, not stretched: a centred square stays square.
    wide = np.full((20, 40, 3), 255, dtype=np.uint8)
    wide[5:15, 15:25] = 0
    dark = to_tensor(wide, 40)[0, 0] < 0.5
    rows, cols = dark.any(1).nonzero().flatten(), dark.any(0).nonzero().flatten()
    assert len(rows) == len(cols) == 10


def test_input_forms_and_rejections():
    assert len(as_image_list(np.zeros((32, 32, 3), np.uint8))) == 1  # one RGB image
    assert len(as_image_list(np.zeros((5, 32, 32, 3), np.uint8))) == 5  # batch
    assert len(as_image_list(np.zeros((5, 32, 32), np.uint8))) == 5  # batch of greyscale
    assert len(as_image_list(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))) == 2
    with pytest.raises(TypeError, match="uint8"):
        to_tensor(np.zeros((32, 32, 3), np.float32), 32)
    with pytest.raises(ValueError, match="0..255"):
        to_tensor(np.full((8, 8), 300, np.int64), 32)
    assert to_tensor(np.full((8, 8), 200, np.int64), 32).shape == (1, 3, 32, 32)  # JSON-ish ints are fine


def test_load_image_modes(tmp_path):
    Image.new("L", (12, 9), 100).save(tmp_path / "g.png")
    Image.new("RGBA", (9, 12), (255, 0, 0, 0)).save(tmp_path / "t.png")
    Image.new("RGB", (8, 8), (10, 20, 30)).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "g.png").shape == (9, 12)
    assert (load_image(tmp_path / "t.png") == 255).all()  # fully transparent -> white
    assert load_image(tmp_path / "p.png").shape == (8, 8, 3)


def test_colour_histograms():
    red = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    red[..., 0] = 255
    red[1, :2] = 0  # half black
    h = colour_histograms(red, bins=4)
    assert h.shape == (2, 64)
    np.testing.assert_allclose((h**2).sum(axis=1), 1.0)  # square roots of a distribution
    assert h[0].max() == 1.0 and np.count_nonzero(h[1]) == 2


# ---------------------------------------------------------------------------------------------------------------
# Units: augmentation, split, sampling, metrics
# ---------------------------------------------------------------------------------------------------------------


def test_augment_is_seeded_shape_preserving_and_bounded():
    x = torch.rand(6, 3, 32, 32)
    a = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    b = augment(x, AugmentConfig(), torch.Generator().manual_seed(1))
    c = augment(x, AugmentConfig(), torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert float(a.min()) >= 0 and float(a.max()) <= 1


def test_augment_flip_only_is_an_exact_mirror():
    off = AugmentConfig(p_flip=1.0, max_shift=0, scale=(1, 1), max_rotation=0, brightness=0, contrast=0,
                        saturation=0, p_grey=0, max_noise=0, p_blur=0)
    x = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(augment(x, off, torch.Generator().manual_seed(0)), torch.flip(x, dims=[-1]),
                               atol=1e-5, rtol=0)


def test_split_holds_out_the_newest_products_per_category():
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    products = pd.DataFrame({
        "product_id": ["a1", "a2", "a3", "a4", "b1", "b2", "c1"],
        "category": ["A", "A", "A", "A", "B", "B", "C"],
        "first_seen": [ts, ts + pd.Timedelta(days=3), pd.NaT, ts + pd.Timedelta(days=1), ts, ts, ts],
    })
    holdout = split_by_product(products, fraction=0.5)
    # A: newest are a3 (never seen = brand new) then a2; B: tie broken by id; C: a single product trains only.
    assert products.loc[holdout, "product_id"].tolist() == ["a2", "a3", "b2"]


def test_balanced_indices_cycle_through_every_image_of_every_class():
    y = np.array([0] * 10 + [1] * 2 + [2] * 4)
    idx = balanced_indices(y, 60, 3, torch.Generator().manual_seed(0))
    assert idx.size == 60
    assert np.bincount(y[idx]).tolist() == [20, 20, 20]
    assert set(idx[y[idx] == 1]) == {10, 11} and set(idx[y[idx] == 0]) == set(range(10))


def test_retrieval_metric_and_ceiling():
    labels = np.array(["a", "a", "b", "b", "b"])
    emb = np.eye(5)
    emb[1] = emb[0]  # item 1 duplicates item 0; the b's are orthogonal to everything
    r, nn = retrieval_at_k(emb[[0, 2]], np.array([0, 2]), emb, labels, k=2)
    assert nn[0, 0] == 1 and 0 not in nn[0]  # the query itself is never its own neighbour
    assert r == pytest.approx((0.5 + 0.0) / 2)  # b-query ties break by position: a, a
    assert retrieval_ceiling(np.array([0, 2]), labels, k=2) == pytest.approx((0.5 + 1.0) / 2)


def test_macro_f1_ignores_categories_absent_from_the_holdout():
    assert macro_f1(["a", "a", "b"], ["a", "a", "b"], ["a", "b", "c"]) == 1.0
    assert macro_f1(["a", "b"], ["a", "c"], ["a", "b", "c"]) == pytest.approx(0.5)


def test_generator_draws_several_varied_views_per_product():
    rng = lambda: np.random.default_rng(3)  # noqa: E731
    files = render_views(rng(), ["books", "electronics"], ["P1", "P2"])
    assert set(STYLE) == set(CATEGORIES)
    assert sorted(files) == sorted(["images/P1.png", "images/P2.png"]
                                   + [f"views/P{i}/{k}.png" for i in (1, 2) for k in range(1, VIEWS_PER_PRODUCT)])
    assert files == render_views(rng(), ["books", "electronics"], ["P1", "P2"])  # seeded
    import io

    views = [np.asarray(Image.open(io.BytesIO(files[f"views/P1/{k}.png"]))).astype(float)
             for k in range(1, VIEWS_PER_PRODUCT)]
    assert views[0].shape == (32, 32, 3)
    # Views of one product differ a lot (pose, scale, background, light), not just by pixel noise.
    assert min(np.abs(a - b).mean() for i, a in enumerate(views) for b in views[i + 1:]) > 10


def test_schedule_scales_with_the_number_of_images():
    small, large = schedule(VisionParams(), 300), schedule(VisionParams(), 10_000)
    assert (small.batch_size, small.samples_per_epoch, small.epochs) == (32, 1024, 30)
    assert (large.batch_size, large.samples_per_epoch, large.epochs, large.width) == (128, 10_000, 60, 32)
    assert small.width == 16
    assert small.augment > large.augment and small.p_erase > large.p_erase == 0.0
    fixed = schedule(VisionParams(epochs=3, batch_size=16, augment=0.0, width=8), 10_000)
    assert (fixed.epochs, fixed.batch_size, fixed.augment, fixed.width) == (3, 16, 0.0, 8)


def test_frame_metric_is_macro_f1_of_any_resample():
    frame = pd.DataFrame({"y": ["a", "a", "b", "c"], "pred": ["a", "b", "b", "c"]},
                         index=pd.Index(["p1", "p2", "p3", "p4"], name="image"))
    assert frame_metric(frame) == pytest.approx(macro_f1(frame["y"], frame["pred"], ["a", "b", "c"]))
    boot = frame.iloc[[0, 0, 2, 3]]
    assert frame_metric(boot) == 1.0
    assert np.isnan(frame_metric(frame.iloc[[]]))


# ---------------------------------------------------------------------------------------------------------------
# A model trained on a generated shop
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vision_gen")
    batch = generate(tmp / "landing", tmp / "truth", customers=300, seed=11)
    ctx = DataContext(settings=Settings(home=tmp / "home"), batch_dir=batch.batch_dir, batch_id=batch.batch_id,
                      truth_dir=batch.truth_dir)
    params = VisionParams(**FAST)
    data = prepare(ctx, params)
    model = fit(data, params)
    return ctx, params, data, model, evaluate(model, data, params)


def test_truth_is_never_read_same_data_and_same_model(generated):
    ctx, _, data, _, ev = generated
    blind = prepare(DataContext(settings=ctx.settings, batch_dir=ctx.batch_dir, batch_id=ctx.batch_id,
                                truth_dir=None), VisionParams(**FAST))
    for name in ("train_x", "train_y", "val_x", "val_y"):
        np.testing.assert_array_equal(getattr(blind, name), getattr(data, name))
    assert blind.holdout_ids == data.holdout_ids and blind.gallery_ids == data.gallery_ids
    assert ev.oracle is None  # no oracle: the label is known exactly
    tiny = VisionParams(epochs=1, samples_per_epoch=64)
    with_truth, without = holdout_frame(fit(data, tiny), data), holdout_frame(fit(blind, tiny), blind)
    pd.testing.assert_frame_equal(with_truth, without)


def test_generated_split_views_and_gate_contract(generated):
    _, _, data, model, ev = generated
    assert len(data.train_x) + len(data.val_x) + len(data.holdout_ids) == 40 * VIEWS_PER_PRODUCT
    product = lambda unit: unit.split("/")[0]  # noqa: E731
    held = {product(u) for u in data.holdout_ids}
    assert len(held) * VIEWS_PER_PRODUCT == len(data.holdout_ids)  # every view of a held-out product, no other
    assert held <= set(data.gallery_ids) and len(data.gallery_ids) == 40
    assert ev.metrics["train_holdout_duplicates"] == 0
    # Gate contract: per-picture frames for the model and every baseline; the metric of the frame is the reported one.
    frame = holdout_frame(model, data)
    assert frame.index.is_unique and list(frame.index) == data.holdout_ids and set(frame.columns) == {"y", "pred"}
    assert frame_metric(frame) == pytest.approx(ev.metrics["macro_f1"]) == pytest.approx(score(model, data))
    assert set(ev.units) == set(ev.baselines) == set(BASELINES)
    for name, units in ev.units.items():
        assert list(units.index) == data.holdout_ids
        assert frame_metric(units) == pytest.approx(ev.baselines[name])
    # Selection on the validation pictures picked the registered candidate.
    assert set(ev.selection) == set(CANDIDATES)
    assert ev.candidate == model.kind == select_candidate(ev.selection, higher_is_better=True)
    assert set(ev.figures) >= {"confusion_matrix.png", "neighbours.png", "augmentations.png"}


@pytest.mark.xfail(strict=True, reason=(
    "not yet true: at 300 customers (20 training products, 120 pictures) the CNN is no better than the baselines "
    "(validation macro-F1 0.29-0.30 for all three; holdout 0.30 CNN with the default schedule vs 0.31 raw-pixel "
    "and 0.17 colour-histogram logistic regression); see docs/models/vision.md"))
def test_cnn_clearly_beats_its_best_baseline_on_generated_data(generated):
    _, _, _, _, ev = generated
    best = max(ev.baselines.values())
    assert best <= 0.85  # look-alike categories and varied views: the baselines are far from solving it
    assert ev.candidate == "model"
    assert ev.metrics["macro_f1"] >= best + 0.1
    assert ev.metrics["recall_at_10"] <= ev.metrics["recall_at_10_ceiling"] + 1e-9


def test_served_model_is_refit_on_every_picture_and_judged_without_the_holdout(generated):
    _, params, data, model, ev = generated
    judged = model.holdout_model
    assert params.refit_on_all and judged is not model and judged.kind == model.kind
    n_all = len(data.fit_x) + len(data.holdout_ids)
    assert (judged.train_pictures, model.train_pictures) == (len(data.fit_x), n_all)
    assert ev.metrics["served_train_pictures"] == n_all
    # The gate's frame and score are the judged copy's; the served model's own predictions may differ.
    judged_pred = [str(p) for p in judged.classify(data.holdout_images)]
    assert holdout_frame(model, data)["pred"].tolist() == judged_pred
    assert score(model, data) == pytest.approx(score(judged, data))
    if model.kind == "model":  # the CNN went on training (warm) from a copy; the judged weights are untouched
        served_w, judged_w = model.state_dict(), judged.state_dict()
        assert any(not torch.equal(served_w[k], judged_w[k]) for k in judged_w if k != "gallery")
        assert any(k.startswith("served_") for k in model.history)
    else:  # a winning baseline is fit afresh on every picture
        assert model.pipeline is not judged.pipeline
    # Switched off, the served model is exactly the judged one.
    tiny = VisionParams(epochs=1, samples_per_epoch=64, refit_on_all=False)
    plain = fit(data, tiny)
    assert plain.holdout_model is plain and plain.train_pictures == len(data.fit_x)


def test_prediction_is_invariant_to_a_horizontal_flip(generated):
    _, _, data, model, ev = generated
    images = list(data.holdout_images)
    mirrored = [im[:, ::-1] for im in images]
    assert (model.classify(images) == model.classify(mirrored)).all()  # flip test-time augmentation
    assert ev.metrics["flip_consistency"] == 1.0
    cos = (model.embed(images) * model.embed(mirrored)).sum(axis=1)
    np.testing.assert_allclose(cos, 1.0, atol=1e-4)


def test_greyscale_and_larger_images_are_classified_sensibly(generated):
    _, _, data, model, _ = generated
    images = data.holdout_images
    grey = [np.asarray(Image.fromarray(im).convert("L")) for im in images]
    big = [np.asarray(Image.fromarray(im).resize((64, 64), Image.BICUBIC)) for im in images]
    base = model.classify(images)
    for variant in (grey, big):
        assert model.classify(variant).shape == base.shape
        assert model.embed(variant).shape == model.embed(images).shape
        assert model.predict_proba(variant).shape == (len(images), len(data.classes))
    assert (model.classify(big) == base).mean() >= 0.8
    assert model.classify(grey[0]).shape == (1,)  # one image in, one answer out (batch axis kept)


def test_nearest_neighbour_of_a_product_image_is_itself(generated):
    _, _, data, model, _ = generated
    ids, scores = model.search(data.gallery_images, k=3)
    assert ids.shape == (len(data.gallery_ids), 3)
    assert ids[:, 0].tolist() == data.gallery_ids
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def _round_trip(model, data, tmp_path):
    import mlflow

    from pipelines import tracking

    tracking.configure(Settings(home=tmp_path))
    exp = mlflow.create_experiment("vision-test", artifact_location=(tmp_path / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp):
        info = log_model(model, data)
    return load_model(info.model_uri)


def test_logged_model_round_trips_through_mlflow(generated, tmp_path):
    _, _, data, model, ev = generated
    loaded = _round_trip(model, data, tmp_path)
    assert loaded.classes == data.classes and loaded.gallery_ids == data.gallery_ids and loaded.kind == model.kind
    assert score(loaded, data) == pytest.approx(ev.metrics["macro_f1"])
    np.testing.assert_allclose(loaded.embed(data.holdout_images[:5]), model.embed(data.holdout_images[:5]),
                               atol=1e-5)
    # pyfunc-style entry point: a pixel tensor in, class probabilities out.
    probs = loaded(torch.from_numpy(np.stack(data.holdout_images[:4])))
    assert probs.shape == (4, len(data.classes))
    torch.testing.assert_close(probs.sum(1), torch.ones(4))


@pytest.mark.parametrize("name", BASELINES)
def test_a_winning_baseline_is_registered_and_served_like_the_cnn(generated, tmp_path, name):
    _, params, data, _, ev = generated
    base = fit_baseline(name, data.classes, data.fit_x, data.fit_y, params)
    base.set_gallery(data.gallery_ids, data.gallery_images, data.gallery_labels)
    loaded = _round_trip(base, data, tmp_path)
    assert loaded.kind == name
    assert frame_metric(holdout_frame(loaded, data)) == pytest.approx(ev.baselines[name])  # the gate's unit frame
    answer = serve_predict(loaded, SimilarRequest(product_id=data.gallery_ids[0], k=3))
    assert answer["predicted_category"] == data.gallery_labels[0] and len(answer["similar"]) == 3


# ---------------------------------------------------------------------------------------------------------------
# Bring your own data: hand-drawn pictures of mixed size and mode, no truth
# ---------------------------------------------------------------------------------------------------------------

SHAPES = ("mug", "shirt", "lamp")


def draw_product(kind: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A crude drawing of one product on a light background: shape and colour family depend on ``kind``."""
    w, h = size
    img = Image.new("RGB", size, tuple(int(v) for v in rng.integers(225, 256, 3)))
    d = ImageDraw.Draw(img)
    s = min(w, h)
    cx, cy = w / 2 + rng.uniform(-0.08, 0.08) * s, h / 2 + rng.uniform(-0.08, 0.08) * s
    r = s * rng.uniform(0.28, 0.36)
    if kind == "mug":  # brown cylinder with a handle on the right
        colour = (int(rng.integers(110, 160)), int(rng.integers(60, 90)), int(rng.integers(20, 50)))
        d.rectangle([cx - r, cy - r, cx + r * 0.6, cy + r], fill=colour)
        d.ellipse([cx + r * 0.3, cy - r * 0.5, cx + r * 1.1, cy + r * 0.5], outline=colour, width=max(2, s // 12))
    elif kind == "shirt":  # blue T shape
        colour = (int(rng.integers(20, 60)), int(rng.integers(60, 120)), int(rng.integers(170, 230)))
        d.polygon([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy - r * 0.3), (cx + r * 0.5, cy - r * 0.3),
                   (cx + r * 0.5, cy + r), (cx - r * 0.5, cy + r), (cx - r * 0.5, cy - r * 0.3),
                   (cx - r, cy - r * 0.3)], fill=colour)
    else:  # yellow lamp: a wide shade on a thin stand
        colour = (int(rng.integers(220, 256)), int(rng.integers(170, 220)), int(rng.integers(0, 60)))
        d.polygon([(cx - r * 0.4, cy - r), (cx + r * 0.4, cy - r), (cx + r, cy), (cx - r, cy)], fill=colour)
        d.rectangle([cx - r * 0.08, cy, cx + r * 0.08, cy + r * 0.8], fill=(60, 60, 60))
        d.rectangle([cx - r * 0.5, cy + r * 0.8, cx + r * 0.5, cy + r], fill=(60, 60, 60))
    return img


def write_own_shop(folder: Path, per_kind: int = 6, seed: int = 0) -> Path:
    """A user's shop folder: five tables (CSV) and hand-drawn PNG/JPEG pictures of mixed size and mode."""
    rng = np.random.default_rng(seed)
    sizes = [(24, 24), (40, 40), (64, 48), (96, 96), (30, 50), (128, 128)]
    modes = ["RGB", "L", "RGBA", "P", "RGB", "L"]
    (folder / "images").mkdir(parents=True)
    rows, events = [], []
    day0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    for i in range(per_kind):
        for kind in SHAPES:
            pid = f"{kind}{i:02d}"
            img = draw_product(kind, sizes[(i + len(rows)) % len(sizes)], rng)
            mode = modes[(i + SHAPES.index(kind)) % len(modes)]
            ext = "jpg" if (i == 3 and kind == "mug") else "png"
            out = img.convert(mode)
            if ext == "jpg" and mode not in ("RGB", "L"):
                out = out.convert("RGB")  # JPEG has no alpha or palette
            out.save(folder / "images" / f"{pid}.{ext}")
            rows.append((pid, kind, f"images/{pid}.{ext}"))
            # Products appear one after another: the highest index of each kind is the newest.
            events.append((f"e{len(events)}", "c1", pid, "view", (day0 + dt.timedelta(days=i)).isoformat()))
    pd.DataFrame(rows, columns=["product_id", "category", "image_file"]).assign(
        brand="own", base_price=10.0, cost=5.0).to_csv(folder / "products.csv", index=False)
    pd.DataFrame(events, columns=["event_id", "customer_id", "product_id", "event_type", "event_ts"]).to_csv(
        folder / "events.csv", index=False)
    pd.DataFrame({"customer_id": ["c1"], "signup_ts": ["2024-02-01"], "region": ["north"],
                  "segment": ["regular"]}).to_csv(folder / "customers.csv", index=False)
    pd.DataFrame({"order_id": ["o1"], "customer_id": ["c1"], "product_id": [rows[0][0]],
                  "order_ts": ["2024-03-02"], "quantity": [1], "unit_price": [10.0], "amount": [10.0]}).to_csv(
        folder / "orders.csv", index=False)
    pd.DataFrame({"product_id": [rows[0][0]], "date": ["2024-03-02"], "price": [10.0], "units": [1]}).to_csv(
        folder / "daily_sales.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def own_data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vision_byo")
    result = import_batch(write_own_shop(tmp / "my-shop"), tmp / "landing")
    ctx = DataContext(settings=Settings(home=tmp / "home"), batch_dir=result.batch_dir, batch_id=result.batch_id,
                      truth_dir=None)
    params = VisionParams(epochs=6, samples_per_epoch=256)
    data = prepare(ctx, params)
    model = fit(data, params)
    return ctx, params, data, model, evaluate(model, data, params)


def test_own_images_train_without_truth(own_data):
    _, _, data, model, ev = own_data
    assert ev.oracle is None
    assert data.classes == sorted(SHAPES)
    # Newest two of six per kind are held out (round(0.3 * 6) = 2), the next newest validates (round(0.25 * 4)).
    assert sorted(data.holdout_ids) == sorted(f"{k}{i:02d}" for k in SHAPES for i in (4, 5))
    assert len(data.val_x) == 3 and len(data.train_x) == 9 and ev.metrics["holdout_pictures"] == 6
    assert {im.ndim for im in data.gallery_images} == {2, 3}  # greyscale pictures stay greyscale until the model
    assert ev.candidate in CANDIDATES and 0.0 <= ev.metrics["macro_f1"] <= 1.0
    assert model.search(data.gallery_images, k=1)[0][:, 0].tolist() == data.gallery_ids


def test_own_data_model_accepts_mixed_inputs(own_data):
    _, _, data, model, _ = own_data
    rng = np.random.default_rng(1)
    mixed = [np.asarray(draw_product("shirt", (50, 70), rng).convert("L")),
             np.asarray(draw_product("mug", (20, 20), rng)),
             np.asarray(draw_product("lamp", (90, 90), rng).convert("RGBA"))]
    assert model.classify(mixed).shape == (3,)
    assert model.embed(mixed).shape == (3, model.embedding_dim)  # the winner's embedding (CNN or baseline features)
