"""A JSON array read one element at a time, each bounded in length before it is parsed.

``json.loads`` of a whole export holds the file and every record at once (a 200 MB array took
1.1 GB); here the text is read in chunks, each element's extent is found by a scan that only
looks at brackets and strings (regular expressions, so at C speed), and only then is the
element parsed, alone. An element longer than the bound is skipped without being kept.
Standard library only.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

CHUNK = 1 << 20
_WS = re.compile(r"[ \t\r\n]*")
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING_BODY = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # a string's characters, up to its closing quote
_SCALAR = re.compile(r"[^,\]}\s]*")


def bounded_lines(fh: TextIO, max_chars: int) -> Iterator[str | "TooLong"]:
    """The lines of ``fh``, a line longer than ``max_chars`` given as :class:`TooLong` (read past
    in chunks, never held whole)."""
    while line := fh.readline(max_chars + 1):
        if len(line) <= max_chars or line.endswith(("\n", "\r")):
            yield line
            continue
        n = len(line)
        while line and not line.endswith(("\n", "\r")):
            line = fh.readline(CHUNK)
            n += len(line)
        yield TooLong(n)


class JsonShapeError(ValueError):
    """The text is not a JSON array (or an object whose ``records`` key is one) that can be read on;
    ``offset``: the character where reading stopped."""

    def __init__(self, message: str, offset: int = 0):
        super().__init__(message)
        self.offset = offset


@dataclass
class Parsed:
    """An element that parsed where it lay in the buffer (the common case, at C speed)."""

    value: Any


@dataclass
class TooLong:
    """An element longer than the bound: skipped, never held."""

    chars: int


class _Text:
    """The text read so far that is still needed, with absolute offsets."""

    def __init__(self, fh: TextIO):
        self.fh, self.buf, self.base, self.eof = fh, "", 0, False

    def more(self, keep_from: int) -> bool:
        """Read another chunk, dropping what lies before absolute offset ``keep_from``."""
        if self.eof:
            return False
        chunk = self.fh.read(CHUNK)
        self.eof = not chunk
        cut = keep_from - self.base
        self.buf, self.base = self.buf[cut:] + chunk, keep_from
        return bool(chunk)

    def at(self, offset: int) -> str:
        """The character at absolute ``offset`` ("" at the end of the text)."""
        while offset - self.base >= len(self.buf):
            if not self.more(min(offset, self.base + len(self.buf))):
                return ""
        return self.buf[offset - self.base]

    def skip_ws(self, offset: int) -> int:
        while True:
            end = _WS.match(self.buf, offset - self.base).end() + self.base
            if end - self.base < len(self.buf) or not self.more(end):
                return end
            offset = end


def _element(text: _Text, start: int, max_chars: int) -> tuple[str | TooLong, int]:
    """The element starting at ``start`` (its text, or :class:`TooLong`) and the offset after it."""
    first = text.at(start)
    kept = True

    def need_more(pos: int) -> bool:
        nonlocal kept
        kept = kept and pos - start <= max_chars
        return text.more(start if kept else pos)

    if first not in "[{\"":
        pos = start
        while True:
            end = _SCALAR.match(text.buf, pos - text.base).end() + text.base
            if end - text.base < len(text.buf) or not need_more(end):
                return (text.buf[start - text.base:end - text.base] if kept and end - start <= max_chars
                        else TooLong(end - start)), end
            pos = end
    depth, pos = 0, start
    while True:
        if first == '"' and depth == 0 and pos == start:
            found, kind = pos, '"'
        else:
            m = _STRUCTURE.search(text.buf, pos - text.base)
            if m is None:
                if not need_more(text.base + len(text.buf)):
                    raise JsonShapeError("the text ends inside a record", start)
                pos = max(pos, text.base)
                continue
            found, kind = m.start() + text.base, m.group()
        if kind == '"':
            end = _string_end(text, found, need_more)
            if first == '"' and depth == 0:
                return _result(text, start, end, kept, max_chars), end
            pos = end
            continue
        depth += 1 if kind in "[{" else -1
        pos = found + 1
        if depth == 0:
            return _result(text, start, pos, kept, max_chars), pos


def _string_end(text: _Text, quote: int, need_more) -> int:
    """The offset after the string whose opening quote is at ``quote``."""
    pos = quote + 1
    while True:
        end = _STRING_BODY.match(text.buf, pos - text.base).end() + text.base
        if end - text.base < len(text.buf) and text.buf[end - text.base] == '"':
            return end + 1
        # The chunk ended inside the string (or on a backslash whose escaped character is next).
        if not need_more(end):
            raise JsonShapeError("a string is never closed", quote)
        pos = end


def _result(text: _Text, start: int, end: int, kept: bool, max_chars: int) -> str | TooLong:
    if not kept or end - start > max_chars:
        return TooLong(end - start)
    return text.buf[start - text.base:end - text.base]


_DECODER = json.JSONDecoder()


def _parsed_in_place(text: _Text, pos: int, max_chars: int) -> tuple[Parsed, int] | None:
    """The element at ``pos`` parsed straight from the buffer when it lies wholly inside it (a
    character after its end is there too, so a number cut by the chunk's end is never taken)."""
    at = pos - text.base
    try:
        value, end = _DECODER.raw_decode(text.buf, at)
    except (ValueError, RecursionError):  # incomplete here, or bad: the scan finds out which
        return None
    if end >= len(text.buf) or end - at > max_chars:
        return None
    return Parsed(value), end + text.base


def array_elements(fh: TextIO, max_chars: int, key: str = "records") -> Iterator[Parsed | str | TooLong]:
    """Each element of the JSON array in ``fh`` (or of its ``key`` when it is an object):
    :class:`Parsed` when it parsed, else its text (for the caller's own parse to say what is wrong
    with it), or :class:`TooLong`."""
    text = _Text(fh)
    pos = text.skip_ws(0)
    opening = text.at(pos)
    if opening == "{":
        pos = _find_key(text, pos + 1, key, max_chars)
    elif opening != "[":
        raise JsonShapeError("expected a JSON array of records (or {\"records\": [...]})", pos)
    pos = text.skip_ws(pos + 1)
    if text.at(pos) == "]":
        return
    while True:
        element, pos = _parsed_in_place(text, pos, max_chars) or _element(text, pos, max_chars)
        yield element
        pos = text.skip_ws(pos)
        after = text.at(pos)
        if after == "]":
            return
        if after != ",":
            raise JsonShapeError("expected ',' or ']' after a record", pos)
        pos = text.skip_ws(pos + 1)


def _find_key(text: _Text, pos: int, key: str, max_chars: int) -> int:
    """The offset of the '[' that is the value of ``key`` in the object whose '{' was before ``pos``."""
    while True:
        pos = text.skip_ws(pos)
        if text.at(pos) != '"':
            raise JsonShapeError("expected a JSON array of records (or {\"records\": [...]})", pos)
        name, pos = _element(text, pos, max_chars)
        pos = text.skip_ws(pos)
        if text.at(pos) != ":":
            raise JsonShapeError("expected ':' after a key", pos)
        pos = text.skip_ws(pos + 1)
        if isinstance(name, str) and json.loads(name) == key and text.at(pos) == "[":
            return pos
        _, pos = _element(text, pos, max_chars)
        pos = text.skip_ws(pos)
        if text.at(pos) != ",":
            raise JsonShapeError(f"no {key!r} array found (expected a JSON array of records or {{\"{key}\": [...]}})",
                                 pos)
        pos += 1
