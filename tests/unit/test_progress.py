"""Progress bars for run_many: the words, the plain bar, and the tqdm and rich adapters."""

from __future__ import annotations

import io

from replicate_async import Progress
from replicate_async.progress import RichBar, TextBar, TqdmBar, bar, describe


def progress(**kw: object) -> Progress:
    base: dict[str, object] = {
        "total": 40,
        "queued": 10,
        "creating": 2,
        "running": 8,
        "succeeded": 18,
        "failed": 2,
        "canceled": 0,
        "elapsed": 10.0,
        "rate": 2.0,
        "eta": 10.0,
    }
    base.update(kw)
    return Progress(**base)  # type: ignore[arg-type]


def test_the_counts_in_words() -> None:
    assert describe(progress()) == "18 done · 2 failed · 10 running · 10 queued · 2.0/s · ETA 10s"
    assert describe(progress(total=None, queued=None, eta=None, failed=0)) == (
        "18 done · 10 running · 2.0/s"
    )
    assert "ETA 1h01m" in describe(progress(eta=3660))


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_plain_bar_redraws_one_line_on_a_terminal() -> None:
    out = FakeTerminal()
    with TextBar(out, width=10) as show:
        show(progress())
        show(progress(succeeded=38, failed=2, queued=0, creating=0, running=0, eta=0))
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")
    assert "20/40 █████░░░░░  50%" in text
    assert "40/40 ██████████ 100%" in text


def test_the_plain_bar_writes_few_plain_lines_into_a_pipe() -> None:
    out = io.StringIO()
    with TextBar(out) as show:
        for second in range(12):
            show(progress(elapsed=float(second)))
    lines = out.getvalue().splitlines()
    assert 2 <= len(lines) <= 4  # every 5 s, and the last state
    assert "\r" not in out.getvalue()


def test_tqdm_and_rich_bars_follow_the_counts() -> None:
    out = io.StringIO()
    with TqdmBar(file=out, mininterval=0) as show:
        show(progress())
    assert "20/40" in out.getvalue() and "running=10" in out.getvalue()
    from rich.console import Console

    console_out = io.StringIO()
    with RichBar(console=Console(file=console_out, width=120, force_terminal=False)) as show:
        show(progress())
    assert "20/40" in console_out.getvalue()
    with bar() as chosen:
        assert isinstance(chosen, RichBar | TqdmBar | TextBar)
