"""The generator's true purchase-choice probabilities, the oracle ranking of the recommendation family.

In the generator every order is one product drawn with probability proportional to
``taste[category] * popularity share within the category * (base_price / category median) ** (2 log spend_scale)``
(see ``pipelines.data.generator._choice_probabilities``); the category median is the median of the log base
prices of the catalogue's products in that category. Choices do not depend on time, so this ranking is the best
any model can do in expectation on the holdout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.data.generator import CATEGORIES, TILT_PER_LOG_SPEND


def choice_probabilities(customers_truth: pd.DataFrame, products_truth: pd.DataFrame, products: pd.DataFrame,
                         customer_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
    """True probability that an order of each customer is each product.

    Args:
        customers_truth: ``customers_truth`` of :func:`pipelines.data.generator.load_truth`.
        products_truth: ``products_truth`` of the same truth folder.
        products: The batch's ``products`` table (for ``base_price``).
        customer_ids: Rows of the result.
        item_ids: Columns of the result (product ids).

    Returns:
        ``(len(customer_ids), len(item_ids))`` probabilities; each row sums to 1 over the whole catalogue.
    """
    prod = (products_truth.assign(product_id=products_truth["product_id"].astype(str)).set_index("product_id")
            .join(products.assign(product_id=products["product_id"].astype(str)).set_index("product_id")
                  [["base_price"]]))
    cat = prod["category"].astype(str)
    pop_share = prod["popularity"] / prod.groupby(cat)["popularity"].transform("sum")
    log_price = np.log(prod["base_price"].astype(float))
    z = log_price - log_price.groupby(cat).transform("median")

    cust = customers_truth.assign(customer_id=customers_truth["customer_id"].astype(str)).set_index("customer_id")
    cust = cust.loc[np.asarray(customer_ids, dtype=str)]
    taste = cust[[f"pref_{c}" for c in CATEGORIES]].to_numpy(dtype=float)
    tilt = TILT_PER_LOG_SPEND * np.log(cust["spend_scale"].to_numpy(dtype=float))

    # Normalise over the whole catalogue (as the generator does), then keep the requested columns.
    cat_idx = cat.map({c: i for i, c in enumerate(CATEGORIES)}).to_numpy()
    w = taste[:, cat_idx] * pop_share.to_numpy()[None, :] * np.exp(np.outer(tilt, z.to_numpy()))
    p = pd.DataFrame(w / w.sum(axis=1, keepdims=True), columns=prod.index)
    return p[list(np.asarray(item_ids, dtype=str))].to_numpy()
