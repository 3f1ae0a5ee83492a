"""The ``muses`` command. Thin: each sub-command parses its flags into a config, calls one action
of :mod:`muses.actions` and prints its result.

Sub-commands live in one module per area (``muses.cli.<area>``), each with a
``register(subparsers)`` function, so that the parser is assembled here in data-flow order.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import re
import sys
from typing import Any, TypeVar

from muses import __version__, progress
from muses.errors import MusesError

# Data-flow order: this is also the order of `muses --help`.
AREAS = ["project", "db", "collection", "naive", "values", "model", "speed", "evaluate", "classify", "web", "decisions"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
Config = TypeVar("Config")


class UsageError(MusesError):
    """Bad usage or bad input found by the command line itself: exit code 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muses",
        description="Turn a museum catalog into an image classifier.",
        epilog="Run `muses COMMAND --help` for each command's flags and examples.",
    )
    parser.add_argument("--version", action="version", version=f"muses {__version__}")
    add_output_args(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for area in AREAS:
        try:
            module = importlib.import_module(f"muses.cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name == f"muses.cli.{area}":
                continue  # area not built yet
            raise
        module.register(subparsers)
    return parser


def add_project_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="project folder (default: $MUSES_PROJECT, else the current directory)",
    )


def add_output_args(parser: argparse.ArgumentParser, *, default) -> None:
    """--quiet and --verbose, before the command (``muses --quiet import ...``) or after it; after
    it their default is SUPPRESS, so a sub-command does not reset a flag given before it."""
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress bars or progress lines")
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also print technical detail (settings, speeds, file paths)")


def command_parser(subparsers, name: str, *, help: str, examples: str = "") -> argparse.ArgumentParser:
    """A sub-command parser with --project and an examples epilog."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=help,
        epilog=("examples:\n" + examples) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_project_arg(parser)
    add_output_args(parser, default=argparse.SUPPRESS)
    return parser


def positive(kind=int):
    """An argparse ``type`` accepting only numbers > 0 of ``kind`` (int or float)."""

    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def default_of(config: type, name: str) -> Any:
    """The default of a config dataclass's field, for --help: the dataclass is the one place a
    default is written, so a flag's help never states another."""
    f = next(f for f in dataclasses.fields(config) if f.name == name)
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def config_from(base: Config, args: argparse.Namespace) -> Config:
    """``base`` with each field whose flag was given replaced (flags default to None, so an
    absent flag keeps the config's default); nested config dataclasses likewise."""
    changes = {}
    for f in dataclasses.fields(base):
        given, value = getattr(args, f.name, None), getattr(base, f.name)
        if given is not None:
            changes[f.name] = tuple(given) if isinstance(given, list) else given
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = config_from(value, args)
    return dataclasses.replace(base, **changes)


# Control characters (C0, DEL, C1) and bidirectional overrides: catalog text holding them
# (a title with "\x1b[31m") would recolour, move or rewrite the curator's terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_RAW_IN_JSON = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # json.dumps escapes C0 itself


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: each control character shown as its escape (``\\x1b``)."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def printable_json(text: str) -> str:
    """JSON text (``ensure_ascii=False``) with the characters JSON leaves raw (C1 controls, bidi
    overrides) written as ``\\uXXXX``: the same data, safe on a terminal."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain-text summary table: first column left-aligned, the others right-aligned; catalog
    text is made :func:`printable`."""
    cells = [[printable(str(h)) for h in headers]] + [["-" if v is None else printable(str(v)) for v in row]
                                                      for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    with progress.configured(quiet=args.quiet):
        return run_command(args)


_MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def run_command(args: argparse.Namespace) -> int:
    """Call ``args.func``. A :class:`MusesError` (a user's mistake, or a run the environment
    stopped) becomes one message line and its exit code; any other exception is a bug and
    keeps its traceback."""
    try:
        result = args.func(args)
    except MusesError as exc:
        print(f"muses {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"muses {args.command}: interrupted; run the command again to resume.", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as exc:
        if exc.errno not in _MACHINE_ERRNOS:
            raise
        # A full disk or a read-only folder stops any command that writes: the machine's, not a bug.
        print(f"muses {args.command}: error: cannot write {exc.filename or 'a file'} ({exc.strerror}); free disk "
              "space or fix the folder's permissions, then run the command again.", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK if result is None else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
