"""What the command line prints: results for people or as JSON, and progress on stderr.

Results go to stdout: text for people by default, exactly one JSON document (or JSON
lines for fan-outs and watches) with ``--json``. Progress (a spinner with a
prediction's status and its model's own progress bar, read from tqdm lines in its
logs; a byte bar for downloads; the fan-out bar) goes to stderr, and only when stdout
is a terminal and ``--json`` is off: pipes get clean data. rich draws it when installed
(``pip install 'replicate-async[cli]'``); plain text otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import attrs

from ..files import FileOutput
from ..protocol import convert

__all__ = ["ByteBar", "Printer", "Spinner", "jsonable", "model_progress"]

#: a tqdm line in a model's logs: " 45%|████      | 9/20 [00:02<00:03, 3.1it/s]"
_TQDM = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)")
_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def model_progress(logs: str | None) -> str | None:
    """The model's own progress, from the last tqdm line in its logs: ``45% (9/20)``."""
    if not logs:
        return None
    matches = list(_TQDM.finditer(logs[-2000:]))
    if not matches:
        return None
    percent, done, total = matches[-1].groups()
    return f"{percent}% ({done}/{total})"


def jsonable(value: Any, saved: Mapping[str, str] | None = None) -> Any:
    """A value as JSON: files as their saved paths (if saved) or URLs; payloads as the API."""
    if isinstance(value, FileOutput):
        return (saved or {}).get(value.url, value.url)
    if isinstance(value, list):
        return [jsonable(item, saved) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item, saved) for key, item in value.items()}
    if attrs.has(type(value)):
        return _strip(convert.converter.unstructure(value))
    if isinstance(value, Path):
        return str(value)
    return value


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class Printer:
    """Writes results: text for people, or JSON (``json=True``)."""

    def __init__(self, *, json_mode: bool, out: TextIO | None = None) -> None:
        self.json = json_mode
        self.out = out or sys.stdout

    @property
    def interactive(self) -> bool:
        """Whether progress may be drawn: a terminal on stdout, and no ``--json``."""
        return not self.json and bool(getattr(self.out, "isatty", lambda: False)())

    def document(self, value: Any, saved: Mapping[str, str] | None = None) -> None:
        """One JSON document (``--json``)."""
        self.out.write(json.dumps(jsonable(value, saved), ensure_ascii=False) + "\n")
        self.out.flush()

    def line(self, text: str = "") -> None:
        """A line of text."""
        self.out.write(text + "\n")
        self.out.flush()

    def output(self, value: Any, saved: Mapping[str, str] | None = None) -> None:
        """A model's output for people: text as it is, files as paths or URLs, one a line."""
        if isinstance(value, str):
            self.line(value)
        elif isinstance(value, FileOutput):
            self.line(str(jsonable(value, saved)))
        elif isinstance(value, list) and all(isinstance(v, (str, FileOutput)) for v in value):
            for item in value:
                self.output(item, saved)
        elif value is None:
            pass
        else:
            self.line(json.dumps(jsonable(value, saved), ensure_ascii=False, indent=2))

    def table(self, rows: list[list[str]]) -> None:
        """Rows of cells, in aligned columns."""
        if not rows:
            return
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self.line("  ".join(cells).rstrip())


def _rich() -> bool:
    return importlib.util.find_spec("rich") is not None


class Spinner:
    """A prediction's status, its model's progress and the time, redrawn on stderr."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._frame = 0
        self._status = rich_status = None
        if enabled and _rich():
            from rich.console import Console

            console = Console(file=self._stream, force_terminal=True)
            rich_status = console.status(label)
            rich_status.start()
        self._rich_status: Any = rich_status

    def update(self, status: str, logs: str | None = None) -> None:
        """Show the prediction's ``status`` and the model's progress in its ``logs``."""
        if not self.enabled:
            return
        elapsed = time.monotonic() - self._started
        text = f"{self.label}: {status}"
        progress = model_progress(logs)
        if progress:
            text += f" · {progress}"
        text += f" · {elapsed:.0f}s"
        if self._rich_status is not None:
            self._rich_status.update(text)
            return
        self._frame = (self._frame + 1) % len(_FRAMES)
        self._stream.write(f"\r{_FRAMES[self._frame]} {text}\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        """Take the spinner off the screen."""
        if not self.enabled:
            return
        if self._rich_status is not None:
            self._rich_status.stop()
            return
        self._stream.write("\r\x1b[K")
        self._stream.flush()


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1000
    return f"{n:.1f} GB"


class ByteBar:
    """A download's bytes, rate and time left, redrawn on stderr."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._started = time.monotonic()
        self._drawn = 0.0
        self._progress: Any = None
        self._task: Any = None
        if enabled and _rich():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            console = Console(file=self._stream, force_terminal=True)
            self._progress = Progress(
                "{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self._progress.start()
            self._task = self._progress.add_task(label, total=None)

    def __call__(self, done: int, total: int | None) -> None:
        """``done`` bytes of ``total`` (None: unknown) so far."""
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)
            return
        now = time.monotonic()
        if now - self._drawn < 0.1 and (total is None or done < total):
            return
        self._drawn = now
        elapsed = max(now - self._started, 1e-6)
        rate = done / elapsed
        text = f"{self.label}  {_size(done)}"
        if total:
            text += f" / {_size(total)}  {done / total:4.0%}"
            if rate > 0:
                text += f"  ETA {max(0.0, (total - done) / rate):.0f}s"
        text += f"  {_size(rate)}/s"
        self._stream.write(f"\r{text}\x1b[K")
        self._stream.flush()

    def close(self) -> None:
        """Finish the bar."""
        if not self.enabled:
            return
        if self._progress is not None:
            self._progress.stop()
            return
        self._stream.write("\n")
        self._stream.flush()
