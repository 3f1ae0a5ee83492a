"""MkDocs hook: pages made at build time from the code and the root files, so they cannot drift.

- ``cli.md``: every ``muses`` command's usage, description, flags and examples, read from the
  argparse parser the command line itself uses (``muses.cli.build_parser``).
- ``security.md``: the root ``SECURITY.md``, which stays where GitHub looks for it.
"""
from __future__ import annotations

import argparse
import html
from pathlib import Path

INTRO = """# Command reference

Every `muses` command with its flags and examples, generated from the command line's own parser
when this site is built, so it always matches `muses COMMAND --help`. Three flags work with every
command and are not repeated below: `--project DIR` (the project folder; default `$MUSES_PROJECT`,
else the current directory), `-q`/`--quiet` (no progress output) and `-v`/`--verbose` (technical
detail; these two also before the command's name). Exit codes: 0 done, 1 the run could not finish, 2 bad usage or bad input.
"""


def _cell(text: str) -> str:
    """Help text as one Markdown table cell: escaped, so `<`, `|`, `*` and `_` stay literal."""
    text = html.escape(" ".join(text.split()), quote=False)
    for char in "\\|*_`[]":
        text = text.replace(char, "\\" + char)
    return text


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _command(name: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} {name}", ""]
    if parser.description:
        lines += [parser.description.strip(), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    formatter = parser._get_formatter()
    shown = [
        action for action in parser._actions
        if action.help != argparse.SUPPRESS
        and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and action.dest not in ("project", "quiet", "verbose")
    ]
    # Positional arguments first, then the flags, each in the parser's own order (as --help).
    shown.sort(key=lambda action: bool(action.option_strings))
    rows = [
        (formatter._format_action_invocation(action), formatter._expand_help(action) if action.help else "")
        for action in shown
    ]
    if rows:
        lines += ["| argument | meaning |", "| --- | --- |"]
        lines += [f"| `{flag}` | {_cell(meaning)} |" for flag, meaning in rows]
        lines.append("")
    if parser.epilog:
        lines += ["```text", parser.epilog.strip(), "```", ""]
    for sub_name, sub_parser in _subcommands(parser):
        lines += _command(f"{name} {sub_name}", sub_parser, level + 1)
    return lines


def cli_reference() -> str:
    """The command reference page as Markdown."""
    from muses.cli import build_parser

    commands = _subcommands(build_parser())
    lines = [INTRO, "| command | what it does |", "| --- | --- |"]
    lines += [f"| [`muses {name}`](#{_anchor(f'muses {name}')}) | {_cell(parser.description or '')} |"
              for name, parser in commands]
    lines.append("")
    for name, parser in commands:
        lines += _command(f"muses {name}", parser, 2)
    return "\n".join(lines)


def _anchor(heading: str) -> str:
    """The id MkDocs' table of contents gives a heading of plain words and hyphens."""
    return heading.lower().replace(" ", "-")


def on_files(files, config):
    from mkdocs.structure.files import File

    root = Path(config.config_file_path).parent
    files.append(File.generated(config, "cli.md", content=cli_reference()))
    files.append(File.generated(config, "security.md", content=(root / "SECURITY.md").read_text("utf-8")))
    return files
