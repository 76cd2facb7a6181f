"""Human approval of a promotion (``SHOPFLOW_PROMOTION=approve``).

The gate still judges every version; a version it would promote is not made champion but waits for a person.
The evidence (the gate's comparisons) is stored with the version, shown by the Airflow approval task and by
``shopflow approve``; approving moves ``champion``, rejecting keeps it, and both land in the alias history with who
decided and why. The registry tag ``shopflow.approval`` (``pending`` -> ``approved``/``rejected``) makes each
decision happen once, whichever of the Airflow UI or the CLI answers first.
"""

from __future__ import annotations

from typing import Any

from pipelines import tracking
from pipelines.errors import UserError
from pipelines.settings import Settings

TAG = "shopflow.approval"
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class ApprovalError(UserError):
    """Nothing to approve (no such version, not awaiting approval, already decided) or no reason given."""


def request(client, model: str, version: str, evidence: str) -> str:
    """Mark ``version`` as awaiting approval with the gate's evidence; returns the verdict for the gate's tags."""
    client.set_model_version_tag(model, version, TAG, PENDING)
    client.set_model_version_tag(model, version, f"{TAG}_evidence", evidence[:5000])
    return "awaiting approval"


def pending(settings: Settings, model: str, version: str) -> dict[str, Any]:
    """The approval request of ``version``: its state and the gate's evidence.

    Raises:
        ApprovalError: no such version.
    """
    mv = _version(settings, model, version)
    return {"model": model, "version": str(mv.version), "state": mv.tags.get(TAG) or "none",
            "evidence": mv.tags.get(f"{TAG}_evidence", "")}


def decide(settings: Settings, model: str, version: str, approve: bool, actor: str, reason: str) -> dict[str, Any]:
    """Approve (``champion`` moves to ``version``) or reject (``champion`` stays) a pending promotion.

    Recorded in the alias history either way. Deciding again the same way is a no-op (an Airflow task retried
    after the CLI answered); deciding the other way is an error.

    Raises:
        ApprovalError: no reason, no such version, not awaiting approval, or decided the other way already.
    """
    from pipelines.rollout.lifecycle import move_alias
    from pipelines.rollout.store import get_store

    verdict = APPROVED if approve else REJECTED
    if not isinstance(reason, str) or not reason.strip():
        raise ApprovalError(f"{'approving' if approve else 'rejecting'} needs --reason (it is recorded in the "
                            "alias history)")
    client = tracking.configure(settings)
    mv = _version(settings, model, version, client)
    version = str(mv.version)
    state = mv.tags.get(TAG)
    if state == verdict:
        return {"model": model, "version": version, "decision": verdict, "changed": False}
    if state != PENDING:
        raise ApprovalError(f"{model} v{version} is not awaiting approval (approval state: {state or 'none'}; "
                            "only a version the gate would promote under SHOPFLOW_PROMOTION=approve awaits one)")
    champion = tracking.version_by_alias(client, model, tracking.CHAMPION)
    champion_version = str(champion.version) if champion is not None else None
    text = f"{verdict} v{version}: {reason.strip()}"
    if approve:
        move_alias(settings, model, tracking.CHAMPION, version, actor, text, client=client)
    else:
        # The alias stays; the history still says who kept it and why.
        get_store(settings).log_alias_change(model, tracking.CHAMPION, champion_version, champion_version, actor,
                                             text)
    client.set_model_version_tag(model, version, TAG, verdict)
    client.set_model_version_tag(model, version, "shopflow.gate", "promoted" if approve else "rejected by a person")
    return {"model": model, "version": version, "decision": verdict, "changed": True,
            "champion": version if approve else champion_version}


def _version(settings: Settings, model: str, version: str, client=None):
    from mlflow.exceptions import MlflowException

    version = str(version).strip().removeprefix("v")
    if not version.isdigit():
        raise ApprovalError(f"version must be a registry version number, got {version!r}")
    client = client or tracking.configure(settings)
    try:
        return client.get_model_version(model, version)
    except MlflowException:
        raise ApprovalError(f"model {model!r} has no registered version {version}") from None
