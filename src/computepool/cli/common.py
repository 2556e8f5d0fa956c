"""Helpers shared by CLI commands: loading inputs with clear errors, Rich output."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer
from rich.console import Console

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """A warning on stderr (deprecations, things done but worth a look)."""
    err_console.print(f"[bold yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def load_or_exit(what: Callable[[], T]) -> T:
    """Run a loader; turn input errors (ValueError, OSError, KeyError) into a clean exit."""
    try:
        return what()
    except (ValueError, OSError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise fail(str(msg)) from None


def parse_window(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        lo, hi = int(a), int(b)
    except ValueError:
        raise fail(f"--window {text!r}: expected A:B with integers, e.g. 4000:5000") from None
    if lo < 0 or hi <= lo:
        raise fail(f"--window {text!r}: need 0 <= A < B")
    return lo, hi


@contextmanager
def progress_bar(description: str, enabled: bool = True) -> Iterator[Callable[[float], None]]:
    """A Rich progress bar fed with a fraction in [0, 1]; silent when not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda _f: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as prog:
        task = prog.add_task(description, total=1.0)
        state = {"last": -1.0}

        def update(frac: float) -> None:
            if frac - state["last"] >= 0.002 or frac >= 1.0:
                state["last"] = frac
                prog.update(task, completed=frac)

        yield update
