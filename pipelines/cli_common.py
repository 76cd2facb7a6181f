"""What every ``shopflow`` sub-app shares: the console, one-line errors, settings, model names and ``--set``."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.settings import Settings, get_settings

# Wide enough for the summary tables when output goes to a file or CI log rather than a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)


def settings_or_fail() -> Settings:
    """Settings from the environment, or a one-line error naming the bad ``SHOPFLOW_`` variable."""
    from pydantic import ValidationError

    get_settings.cache_clear()
    try:
        return get_settings()
    except ValidationError as exc:  # e.g. SHOPFLOW_CUSTOMERS=-1: name the variable, no traceback
        fail("bad settings: " + "; ".join(
            f"SHOPFLOW_{'__'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()), 2)
        raise  # unreachable; keeps type checkers happy


def fail(message: str, code: int = 1) -> None:
    # One line: rich would wrap long messages (paths) at the console width.
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def check_models(models: list[str]) -> None:
    """Exit with one line naming the known families when a name is not one of them (before any work starts)."""
    from pipelines.registry import load_registry

    unknown = [m for m in models if m not in load_registry()]
    if unknown:
        fail(f"unknown model {', '.join(map(repr, unknown))}; known models: {', '.join(load_registry())}", 2)


def parse_sets(sets: list[str]) -> dict[str, str]:
    out = {}
    for item in sets:
        if "=" not in item:
            fail(f"--set expects key=value, got {item!r}", 2)
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def validated_params(model: str, overrides: dict[str, str]):
    """The family's params from ``overrides``, or a one-line error naming the bad key."""
    from pydantic import ValidationError

    from pipelines.registry import get_spec

    try:
        return get_spec(model).parse_params(overrides)
    except ValidationError as exc:
        fail(f"bad --set for {model}: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                  for e in exc.errors()), 2)
