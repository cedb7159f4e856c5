"""Tasks read one at a time from a JSON array file, and the answer written as each task finishes.

`python -m maskmargin run` keeps neither the whole task list nor the results in memory: a run of
10,000 tasks holds a few tasks and images at a time, and a run stopped midway leaves on standard
output every answer finished so far (so each mask file written can be mapped to its task).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any

CHUNK = 1 << 20  # characters read at a time


class TasksFileError(Exception):
    """The tasks file is not a JSON array (syntax, nesting or top-level type): a usage error."""


def iter_json_array(stream: IO[str], name: str) -> Iterator[Any]:
    """The elements of the JSON array in `stream`, parsed one at a time.

    Raises TasksFileError when the text is not one JSON array (or nests too deeply to parse); elements
    before the fault have been yielded by then, so callers that must not act on a broken file check it
    with `count_tasks` first.
    """
    decoder = json.JSONDecoder()
    buffer, pos, eof, dropped = "", 0, False, 0  # dropped: characters of the file before `buffer`

    def more() -> bool:
        """Read on: at least a chunk, or as much as is buffered (an element re-parsed on growth costs
        twice its size in all, however large)."""
        nonlocal buffer, pos, eof, dropped
        if eof:
            return False
        chunk = stream.read(max(CHUNK, len(buffer) - pos))
        if not chunk:
            eof = True
            return False
        dropped += pos
        buffer, pos = buffer[pos:] + chunk, 0
        return True

    def skip_space() -> str | None:
        """The next character that is not white space (not consumed), None at the end of the text."""
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos] in " \t\r\n":
                pos += 1
            if pos < len(buffer):
                return buffer[pos]
            if not more():
                return None

    def fail(what: str) -> TasksFileError:
        return TasksFileError(f"{name} is not a JSON array of tasks: {what}")

    if skip_space() != "[":
        raise fail("it does not start with '['")
    pos += 1
    first = True
    while True:
        c = skip_space()
        if c is None:
            raise fail("the text ends before the closing ']'")
        if c == "]":
            pos += 1
            if skip_space() is not None:
                raise fail("there is more text after the closing ']'")
            return
        if not first:
            if c != ",":
                raise fail(f"expected ',' or ']' between tasks, found {c!r}")
            pos += 1
            if skip_space() is None:
                raise fail("the text ends before the closing ']'")
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                if more():  # maybe the element goes on in the next chunk
                    continue
                raise fail(f"{exc.msg} at character {dropped + exc.pos + 1}") from None
            except RecursionError:
                raise fail("arrays or objects nest too deeply") from None
            # a number cut at the chunk's end ("12" of "12.5e3") parses too: it needs a delimiter after it
            if (end < len(buffer) and not _may_continue(value, buffer, end)) or not more():
                break
        pos = end
        first = False
        yield value


def _may_continue(value: Any, buffer: str, end: int) -> bool:
    """Whether a number could go on past the end of the buffer (only ".", "e", "+", "-" or digits follow)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return len(buffer) - end < 4 and not buffer[end:].strip("0123456789.eE+-")


def count_tasks(stream: IO[str], name: str) -> int:
    """How many elements the JSON array holds, checking the whole text without keeping any of them."""
    return sum(1 for _ in iter_json_array(stream, name))


def spooled(stream: IO[str]) -> IO[str]:
    """A seekable copy of a stream that can be read once (standard input), kept on disk beyond 8 MB."""
    copy = tempfile.SpooledTemporaryFile(max_size=8 << 20, mode="w+", encoding="utf-8")
    while chunk := stream.read(CHUNK):
        copy.write(chunk)
    copy.seek(0)
    return copy


class AnswerWriter:
    """Writes `{"data": [...], "errors": [...]}` as `json.dumps(answer, indent=2)` would, one result at a
    time: each result is written and flushed when it is finished; errors (small) wait on disk for the end."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.results = 0
        self.errors = 0
        self._errors = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        out.write('{\n  "data": [')
        out.flush()

    def add(self, kind: str, entry: dict) -> None:
        if kind == "errors":
            self._errors.write(json.dumps(entry) + "\n")
            self.errors += 1
            return
        self.out.write(("," if self.results else "") + "\n" + _indented(entry))
        self.out.flush()
        self.results += 1

    def close(self) -> None:
        self.out.write("\n  ]" if self.results else "]")
        if self.errors:
            self.out.write(',\n  "errors": [')
            self._errors.seek(0)
            for i, line in enumerate(self._errors):
                self.out.write(("," if i else "") + "\n" + _indented(json.loads(line)))
            self.out.write("\n  ]")
        self.out.write("\n}\n")
        self.out.flush()
        self._errors.close()


def _indented(entry: dict) -> str:
    return "\n".join("    " + line for line in json.dumps(entry, indent=2).splitlines())
