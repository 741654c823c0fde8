"""Progress bars for ``run_many(progress=...)``: a plain one, or tqdm's or rich's if installed.

Each bar is a callable taking a :class:`~replicate_async.Progress` and a context manager
that finishes the bar on exit::

    with progress.bar() as show:  # rich if installed, else tqdm, else plain text
        async for result in client.run_many("owner/name", inputs, progress=show):
            ...

tqdm and rich are optional (``pip install 'replicate-async[progress]'``); nothing here
imports them unless their bar is asked for.
"""

from __future__ import annotations

import importlib.util
import sys
from types import TracebackType
from typing import Any, TextIO

from .fanout import Progress

__all__ = ["Bar", "RichBar", "TextBar", "TqdmBar", "bar", "describe"]


def _seconds(value: float) -> str:
    value = max(0, round(value))
    minutes, seconds = divmod(value, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def describe(progress: Progress) -> str:
    """The counts in words: ``"12 done · 1 failed · 30 running · 4.1/s · ETA 7s"``."""
    parts = [f"{progress.succeeded} done"]
    if progress.failed:
        parts.append(f"{progress.failed} failed")
    if progress.canceled:
        parts.append(f"{progress.canceled} canceled")
    parts.append(f"{progress.creating + progress.running} running")
    if progress.queued:
        parts.append(f"{progress.queued} queued")
    parts.append(f"{progress.rate:.1f}/s")
    if progress.eta is not None:
        parts.append(f"ETA {_seconds(progress.eta)}")
    return " · ".join(parts)


class Bar:
    """The shape of every bar here: call it with each Progress; close it when done."""

    def __call__(self, progress: Progress) -> None:
        """Show ``progress``."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the bar (its last state stays on screen)."""

    def __enter__(self) -> Bar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class TextBar(Bar):
    """A one-line bar rewritten in place on a terminal; plain lines, sparingly, elsewhere."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 24, prefix: str = "") -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._width = width
        self._prefix = prefix
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last: Progress | None = None
        self._printed_at = -1.0

    def __call__(self, progress: Progress) -> None:
        self._last = progress
        if self._tty:
            self._stream.write("\r" + self._line(progress) + "\x1b[K")
            self._stream.flush()
        elif progress.elapsed - self._printed_at >= 5:  # a log, not an animation
            self._printed_at = progress.elapsed
            self._stream.write(self._line(progress) + "\n")

    def _line(self, progress: Progress) -> str:
        text = describe(progress)
        if progress.total:
            share = progress.finished / progress.total
            filled = round(share * self._width)
            drawn = "█" * filled + "░" * (self._width - filled)
            text = f"{progress.finished}/{progress.total} {drawn} {share:4.0%} · {text}"
        return self._prefix + text

    def close(self) -> None:
        if self._last is not None:
            end = "\n" if self._tty else ""
            last = self._line(self._last)
            self._stream.write(("\r" + last + "\x1b[K" + end) if self._tty else last + "\n")
            self._stream.flush()
            self._last = None


class TqdmBar(Bar):
    """A ``tqdm`` bar (``pip install tqdm``): finished out of total, the rest as postfix."""

    def __init__(self, **tqdm_kwargs: Any) -> None:
        from tqdm import tqdm

        self._bar = tqdm(unit="prediction", **tqdm_kwargs)

    def __call__(self, progress: Progress) -> None:
        bar = self._bar
        if progress.total is not None and bar.total != progress.total:
            bar.total = progress.total
        bar.n = progress.finished
        bar.set_postfix(
            running=progress.creating + progress.running,
            failed=progress.failed,
            refresh=False,
        )
        bar.refresh()

    def close(self) -> None:
        self._bar.close()


class RichBar(Bar):
    """A ``rich`` progress bar (``pip install rich``)."""

    def __init__(self, description: str = "predictions", **progress_kwargs: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[counts]}"),
            **progress_kwargs,
        )
        self._task = self._progress.add_task(description, total=None, counts="")
        self._progress.start()

    def __call__(self, progress: Progress) -> None:
        self._progress.update(
            self._task,
            total=progress.total,
            completed=progress.finished,
            counts=describe(progress),
        )

    def close(self) -> None:
        self._progress.stop()


def bar(description: str = "predictions") -> Bar:
    """The best bar installed: rich's, else tqdm's, else the plain :class:`TextBar`."""
    if importlib.util.find_spec("rich") is not None:
        return RichBar(description)
    if importlib.util.find_spec("tqdm") is not None:
        return TqdmBar(desc=description)
    return TextBar()
