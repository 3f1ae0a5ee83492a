"""What the web app remembers between requests: definitions.toml parsed once per version of the
file, and answers (counts, pages, rendered listings) kept until the collection changes."""
from __future__ import annotations

import concurrent.futures
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from muses.labeling.definitions import Definitions, load_definitions_cached


class DefinitionsCache:
    """The project's definitions, or None while there is no definitions.toml."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._seen: tuple[tuple, Definitions] | None = None  # (the file's version, its definitions)

    def get(self) -> Definitions | None:
        # Asked several times by every request: one stat tells whether the file changed.
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        version = (info.st_mtime_ns, info.st_size, info.st_ino)
        seen = self._seen
        if seen is not None and seen[0] == version:
            return seen[1]
        definitions = load_definitions_cached(self.path)  # a broken file raises its MusesError every time
        self._seen = (version, definitions)
        return definitions


class Memo:
    """Answers remembered under their key: the ``size`` most recently used, weighing at most
    ``max_bytes`` together (rendered pages by their length, large answers by their ``weight``).
    An answer asked for by many at once is computed once (single flight): the others wait for
    it instead of running the same heavy query fifty times."""

    def __init__(self, size: int, max_bytes: int):
        self.size = size
        self.max_bytes = max_bytes
        self._answers: OrderedDict[Hashable, Any] = OrderedDict()
        self._bytes = 0
        self._epoch = 0  # counts clear(): an answer computed from the data before one is not kept
        self._pending: dict[Hashable, concurrent.futures.Future] = {}  # answers being computed now
        self._lock = threading.Lock()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._answers

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._bytes = 0
            self._epoch += 1
            self._pending.clear()  # later askers compute anew rather than wait for an answer from the old data

    def get(self, key: Hashable, make: Callable[[], Any], *, keep: Callable[[Any], bool] = lambda _: True) -> Any:
        """The answer under ``key``, ``make()`` the first time; remembered only when ``keep(answer)``."""
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
            pending = self._pending.get(key)
            mine = pending is None
            if mine:
                pending = self._pending[key] = concurrent.futures.Future()
                pending.set_running_or_notify_cancel()
            epoch = self._epoch
        if not mine:
            return pending.result()
        try:
            value = make()
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        finally:
            with self._lock:
                if self._pending.get(key) is pending:
                    del self._pending[key]
        if keep(value):
            with self._lock:
                if epoch == self._epoch:
                    self._remember(key, value)
        pending.set_result(value)
        return value

    def _remember(self, key: Hashable, value: Any) -> None:
        self._answers[key] = value
        self._bytes += _weight(value)
        while self._answers and (len(self._answers) > self.size or self._bytes > self.max_bytes):
            _, dropped = self._answers.popitem(last=False)
            self._bytes -= _weight(dropped)


def _weight(value: Any) -> int:
    """Bytes, roughly: a rendered page's length, or what a large answer says it weighs."""
    return len(value) if isinstance(value, bytes) else getattr(value, "weight", 0)
