"""Progress of long runs, on stderr: the one reporter every command uses.

On a terminal: a bar with counts and the time left (tqdm). Anywhere else (a log file, CI) a
carriage-return bar would write dozens of states into one unreadable line, so there it is a
plain line every few seconds, ``generate-images: 120/206 photos, 58 %, about 12 s left``, and
one when the run ends. ``muses --quiet`` silences it.

Library code calls :func:`progress_bar` with the arguments it would give ``tqdm(...)``, and
:func:`note` instead of ``tqdm.write`` for a message that must not break a bar.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

LINE_EVERY_S = 5.0  # seconds between two plain progress lines


@dataclass(frozen=True)
class ProgressSettings:
    quiet: bool = False
    line_every_s: float = LINE_EVERY_S


_settings = ProgressSettings()


def configure(*, quiet: bool = False, line_every_s: float = LINE_EVERY_S) -> None:
    global _settings
    _settings = ProgressSettings(quiet=quiet, line_every_s=line_every_s)


@contextmanager
def configured(*, quiet: bool = False, line_every_s: float = LINE_EVERY_S) -> Iterator[None]:
    """These settings for one command (``muses --quiet``), the earlier ones back afterwards, so a
    program that runs several commands (a test session) does not keep the last one's."""
    global _settings
    before = _settings
    configure(quiet=quiet, line_every_s=line_every_s)
    try:
        yield
    finally:
        _settings = before


class Bar(Protocol):
    """What callers may use: the part of tqdm's interface every kind of bar has."""

    n: float
    total: float | None

    def update(self, n: float = 1) -> Any: ...
    def set_postfix(self, **values: Any) -> Any: ...
    def close(self) -> Any: ...
    def __enter__(self) -> Bar: ...
    def __exit__(self, *exc: Any) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...


class SilentBar:
    """Counts, shows nothing (``--quiet``, or a caller's ``disable=True``)."""

    def __init__(self, iterable: Iterable[Any] | None = None, total: float | None = None):
        self.iterable, self.n, self.total = iterable, 0, total

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> SilentBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        for value in self.iterable or ():
            yield value
            self.update()


def duration(seconds: float) -> str:
    """``12 s``, ``4 min``, ``2.5 h``: how long, in words a log reader takes in at a glance."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class LineBar(SilentBar):
    """One plain line every ``every_s`` seconds and one at the end; no carriage returns."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", stream: TextIO, every_s: float = LINE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(iterable, total)
        self.desc, self.unit, self.stream, self.every_s, self.clock = desc, unit, stream, every_s, clock
        self.start = self.last = clock()
        self.postfix = ""
        self.closed = False

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every_s:
            self.last = now
            self._print(self._when(now))

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{key} {value}" for key, value in values.items())

    def close(self, *, stopped: bool = False) -> None:
        if self.closed or not (self.n or stopped):  # a run with nothing to do says so itself
            self.closed = True
            return
        self.closed = True
        elapsed = duration(self.clock() - self.start)
        self._print(f"stopped after {elapsed}" if stopped else f"done in {elapsed}")

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(stopped=exc_type is not None)

    def __iter__(self) -> Iterator[Any]:
        yield from super().__iter__()
        self.close()

    def _when(self, now: float) -> str:
        if not self.total or not self.n:
            return f"{duration(now - self.start)} so far"
        left = (now - self.start) * (self.total - self.n) / self.n
        return f"about {duration(left)} left"

    def _print(self, when: str) -> None:
        done = f"{_count(self.n)}/{_count(self.total)} {self.unit}" if self.total else f"{_count(self.n)} {self.unit}"
        percent = f", {100 * self.n / self.total:.0f} %" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done}{percent}{extra}, {when}", file=self.stream, flush=True)


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", disable: bool = False, leave: bool = True,
                 stream: TextIO | None = None) -> Bar:
    """A progress bar for this run: takes ``tqdm``'s usual arguments (``total`` defaults to
    ``len(iterable)`` where it has one) and writes to ``stream`` (default: stderr)."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    if disable or _settings.quiet:
        return SilentBar(iterable, total)
    stream = stream or sys.stderr
    if _is_terminal(stream):
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=stream, dynamic_ncols=True)
    return LineBar(iterable, total=total, desc=desc, unit=unit, stream=stream, every_s=_settings.line_every_s)


def follow(bar: Bar) -> Callable[[float, float | None], None]:
    """A ``progress(done, total)`` callback, the library's way of reporting, that moves ``bar``."""

    def advance(done: float, total: float | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return advance


def note(text: str, *, stream: TextIO | None = None) -> None:
    """A message on stderr that does not break a bar being drawn (``tqdm.write``'s job)."""
    stream = stream or sys.stderr
    if _is_terminal(stream):
        from tqdm import tqdm

        tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)


def _count(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.1f}"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
