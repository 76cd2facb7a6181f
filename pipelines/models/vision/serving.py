"""Serving of the vision family: visually similar catalogue products for a product id or an uploaded image."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from pipelines.models.vision.metrics import K
from pipelines.models.vision.model import load_model
from pipelines.serving import batch_values
from pipelines.spec import ApiModel, ServedResponse, ServingSpec

MAX_IMAGE_BYTES = 5_000_000


class SimilarRequest(ApiModel):
    product_id: str | None = Field(None, min_length=1, max_length=64, description="A catalogue product.")
    image_base64: str | None = Field(None, max_length=MAX_IMAGE_BYTES * 4 // 3 + 4,
                                     description="A PNG/JPEG image, base64-encoded (any size, grey or RGB).")
    k: int = Field(K, ge=1, le=100)


class SimilarProduct(ApiModel):
    product_id: str
    score: float
    category: str


class SimilarResponse(ServedResponse):
    query: str
    predicted_category: str
    similar: list[SimilarProduct]


def decode_image(data: str) -> np.ndarray:
    """Pixels of a base64 PNG/JPEG, decoded within the platform's limits (:func:`pipelines.serving.decode_image`).

    Raises:
        RequestError: naming ``image_base64`` when it is not base64, not an image, or too large.
    """
    import base64
    import binascii

    from pipelines.serving import RequestError
    from pipelines.serving import decode_image as decode_bounded

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("image_base64", "not valid base64") from None
    return decode_bounded(raw, "image_base64", max_bytes=MAX_IMAGE_BYTES)


def serve_predict(model, request: SimilarRequest) -> dict:
    """Nearest catalogue products by the CNN embedding (cosine), for a product id or an image."""
    import torch

    from pipelines.serving import NotFound, RequestError

    if (request.product_id is None) == (request.image_base64 is None):
        raise RequestError("product_id", "give exactly one of product_id or image_base64")
    labels = dict(zip(model.gallery_ids, model.gallery_labels, strict=True))
    if request.product_id is not None:
        if request.product_id not in labels:
            raise NotFound("product_id", f"unknown product {request.product_id!r} (not in the indexed catalogue)")
        row = model.gallery_ids.index(request.product_id)
        sims = (model.gallery[row:row + 1] @ model.gallery.T).cpu()
        sims[0, row] = -float("inf")  # the product itself is not "similar"
        top = torch.topk(sims, k=min(request.k, sims.shape[1] - 1), dim=1)
        ids = [model.gallery_ids[i] for i in top.indices[0].tolist()]
        scores, query, category = top.values[0].tolist(), request.product_id, labels[request.product_id]
    else:
        pixels = decode_image(request.image_base64)
        cats, found, sc = model.classify_and_search([pixels], k=request.k)
        ids, scores, query, category = list(found[0]), sc[0].tolist(), "image", str(cats[0])
    return {"query": query, "predicted_category": category,
            "similar": [{"product_id": str(i), "score": float(s), "category": labels.get(str(i), "")}
                        for i, s in zip(ids, scores, strict=True)]}


SERVING = ServingSpec(
    request=SimilarRequest, response=SimilarResponse, load=lambda settings, uri: load_model(uri),
    predict=serve_predict, unit_id=lambda r: r.product_id or "image:" + (r.image_base64 or "")[:64],
    route="/similar", upload_field="image_base64",
    example=lambda s: {"product_id": batch_values(s, "products", "product_id", 1)[0], "k": 5},
    unknown={"product_id": "P_DOES_NOT_EXIST", "k": 5},
    summary="Visually similar products for a catalogue product id or an image (base64 or upload).",
)
