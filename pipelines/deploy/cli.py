"""``shopflow k8s``: render the Kubernetes tree from the model registry and validate it offline."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from pipelines.deploy import k8s, platform, platform_check

log = logging.getLogger(__name__)

app = typer.Typer(help="Kubernetes manifests generated from the model registry (Kustomize tree under k8s/).",
                  no_args_is_help=True, pretty_exceptions_enable=False)


def _rollout_weights() -> dict[str, float] | None:
    """Challenger shares from the A/B rollout state, or ``None`` (0% everywhere) when that module is absent."""
    try:
        from pipelines.rollout import current_weights
    except ImportError as exc:  # the rollout library is optional for rendering
        log.warning("pipelines.rollout.current_weights is not available (%s); rendering 0%% challenger traffic", exc)
        return None
    from pipelines.settings import get_settings

    get_settings.cache_clear()
    try:
        return current_weights(get_settings())
    except Exception as exc:  # e.g. the rollout database is unreachable: say so instead of a traceback
        typer.echo(f"error: could not read the rollout state: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def render(out: Path = typer.Option(k8s.K8S_ROOT, "--out", help="Root of the tree (base/ and overlays/ are "
                                                                      "written under it)."),
           check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if the tree is stale."),
           weights_from_rollout: bool = typer.Option(False, "--weights-from-rollout",
                                                     help="HTTPRoute weights from the A/B rollout state "
                                                          "(default: 100% champion).")) -> None:
    """Write (or with --check, verify) the Kustomize trees: the model servers of every registered family, and the
    platform (Airflow, MLflow, KFP upload) under platform/."""
    weights = _rollout_weights() if weights_from_rollout else None
    try:
        files = k8s.render_tree(weights=weights)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    platform_files = platform.render_tree()
    if check:
        problems = k8s.stale_files(out, files) + [f"platform/{p}" for p in k8s.stale_files(out / "platform",
                                                                                          platform_files)]
        if problems:
            typer.echo(f"{out} is stale ({len(problems)} file(s)):", err=True)
            for p in problems:
                typer.echo(f"  {p}", err=True)
            typer.echo(f"regenerate with: {k8s.REGENERATE}", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out}: {len(files) + len(platform_files)} generated files up to date")
        return
    changed = k8s.write_tree(out, files) + [f"platform/{p}" for p in k8s.write_tree(out / "platform",
                                                                                     platform_files)]
    for p in changed:
        typer.echo(f"  {p}")
    split = ", ".join(f"{m} {k8s.challenger_percent(weights, m)}%" for m in sorted(weights or {})) or "none"
    typer.echo(f"wrote {len(files) + len(platform_files)} files under {out} ({len(changed)} changed); "
               f"challenger traffic: {split}")


@app.command()
def validate(root: Path = typer.Option(k8s.K8S_ROOT, "--root", help="Root of the tree to validate."),
             overlay: list[str] = typer.Option([], "--overlay", help="Only this overlay (repeatable): base, "
                                                                      "local, production, platform/base, "
                                                                      "platform/local, platform/production."),
             python_render: bool = typer.Option(False, "--python-render",
                                                help="Validate the Python render instead of `kubectl kustomize`.")
             ) -> None:
    """Build each overlay and validate every object offline (Kubernetes OpenAPI schemas, Gateway API checks, the
    platform's RBAC and KubernetesExecutor pod template)."""
    serving = ["base", *k8s.overlays()]
    platform_names = [f"platform/{o}" for o in ["base", *platform.overlays()]]
    unknown = [o for o in overlay if o not in serving + platform_names]
    if unknown:
        typer.echo(f"error: unknown --overlay {', '.join(unknown)}; known: {', '.join(serving + platform_names)}",
                   err=True)
        raise typer.Exit(2)
    chosen = overlay or serving + platform_names
    serving_chosen = [o for o in chosen if o in serving]
    platform_chosen = [o.split("/", 1)[1] for o in chosen if o in platform_names]
    kustomize = not python_render
    try:
        reports = ((k8s.validate_tree(root, serving_chosen, kustomize) if serving_chosen else [])
                   + (platform_check.validate_tree(root / "platform", platform_chosen, kustomize)
                      if platform_chosen else []))
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    failed = False
    for r in reports:
        status = "ok" if not r.errors else f"{len(r.errors)} error(s)"
        typer.echo(f"{r.overlay}: {r.objects} objects ({r.engine}, Kubernetes {k8s.K8S_VERSION} schemas): {status}")
        for e in r.errors:
            typer.echo(f"  {e}")
        failed |= bool(r.errors)
    if failed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
