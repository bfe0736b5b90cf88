"""Rich consoles (data to stdout, progress and logs to stderr) and a progress reporter."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from rich.console import Console


@cache
def out_console() -> Console:
    """stdout; wide when piped, so tables stay readable in logs and files."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


@cache
def err_console() -> Console:
    return Console(stderr=True)


@contextlib.contextmanager
def progress_reporter(title: str, total: int) -> Iterator[Any]:
    """A callback taking engine `Progress` events: a live bar on a terminal, one line per second otherwise."""
    console = err_console()
    if console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console, transient=False) as bar:
            task = bar.add_task(title, total=total, rate="")

            def update(event: Any) -> None:
                rate = f"{event.crops / event.seconds:,.0f} crops/s" if event.seconds > 0 else ""
                bar.update(task, completed=event.done, rate=rate)

            yield update
        return
    last = [0.0]

    def log(event: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or event.done == event.total:
            last[0] = now
            rate = event.crops / event.seconds if event.seconds > 0 else 0.0
            console.print(f"{title}: {event.done}/{event.total} images, {rate:,.0f} crops/s",
                          markup=False, highlight=False)

    yield log
