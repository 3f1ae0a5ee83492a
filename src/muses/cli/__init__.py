"""The ``muses`` command. Thin: each sub-command parses its flags and calls the library.

Sub-commands live in one module per area (``muses.cli.<area>``), each with a
``register(subparsers)`` function, so that the parser is assembled here in data-flow order.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from muses import __version__, progress
from muses.errors import MusesError

# Data-flow order: this is also the order of `muses --help`.
AREAS = ["project", "db", "collection", "naive", "values", "model", "speed", "evaluate", "classify", "web", "decisions"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


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


def format_table(headers: list[str], rows: list[list]) -> str:
    """A plain-text summary table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
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
    return EXIT_OK if result is None else int(result)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
