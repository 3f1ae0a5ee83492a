"""The documentation stays true to the code: every `muses ...` line in the README and docs/
parses with the real parser, the generated command reference lists every command and flag, and
the settings table shows every muses.toml key with its real default."""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

from muses.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def documented_commands() -> list[tuple[str, str]]:
    """(where, command line) for each `muses ...` line in a code block of the README or docs/."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        in_code, lines = False, path.read_text("utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if line.startswith("```"):
                in_code = not in_code
                continue
            text = line.strip().removeprefix("$ ")
            if (in_code or line.startswith("    ")) and text.startswith("muses "):
                follow = number
                while text.endswith("\\") and follow < len(lines):  # a shell line continued on the next
                    text, follow = text[:-1] + lines[follow].strip(), follow + 1
                found.append((f"{path.relative_to(ROOT)}:{number}", text))
    return found


def test_every_documented_command_parses():
    parser = build_parser()
    commands = documented_commands()
    assert len(commands) > 50, "the documents' command lines were not found"
    refused = []
    for where, text in commands:
        # A shell line: its own command only, up to a redirection or the next command.
        words = shlex.split(text, comments=True)
        for stop in (">", "&&", "|"):
            if stop in words:
                words = words[: words.index(stop)]
        if "..." in words or "…" in words:
            continue  # "muses train-model ..." stands for any flags
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors):
                parser.parse_args(words[1:])
        except SystemExit:
            refused.append(f"{where}: {text}\n    {errors.getvalue().strip().splitlines()[-1]}")
    assert not refused, "documented commands the parser refuses:\n" + "\n".join(refused)


def test_cli_reference_lists_every_command_and_flag():
    spec = importlib.util.spec_from_file_location("generated_pages", ROOT / "docs/hooks/generated_pages.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.cli_reference()

    def walk(name, parser):
        assert f"# {name}\n" in page, f"{name} is missing from the command reference"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub_parser in action.choices.items():
                    walk(f"{name} {sub_name}", sub_parser)
            elif action.dest not in ("help", "project", "quiet", "verbose"):
                for option in action.option_strings:
                    assert f"`{option}" in page or f", {option}" in page, f"{name} {option} is missing"

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                walk(f"muses {name}", sub)


def test_every_muses_toml_key_is_documented_with_its_default():
    import dataclasses

    from muses.settings import Settings

    documented, table = {}, None  # (table, key) -> the default shown: one Markdown table per muses.toml table
    for line in (ROOT / "docs/getting-started.md").read_text("utf-8").splitlines():
        if heading := re.fullmatch(r"### `\[([\w.]+)\]`", line):
            table = heading[1]
        elif row := re.match(r"\| `(\w+)` \| `([^`]*)` \|", line):
            documented[table, row[1]] = row[2]

    def shown(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return f'"{value}"'
        if isinstance(value, tuple):
            return "[]" if not value else repr(list(value))
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    def walk(cls, table):
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(f.default_factory):
                yield from walk(f.default_factory, f"{table}.{f.name}" if table else f.name)
            else:
                yield table, f.name, shown(f.default)

    wrong = [f"[{table}] {key} = {default} (documented: {documented.get((table, key), 'nothing')})"
             for table, key, default in walk(Settings, "") if documented.get((table, key)) != default]
    assert not wrong, "muses.toml keys whose default docs/getting-started.md does not show:\n" + "\n".join(wrong)


def test_the_python_api_page_shows_every_training_default():
    """docs/python-api.md's TrainCfg table states each field's default: it must be TrainCfg's."""
    import ast
    import dataclasses
    import re

    from muses.model.config import TrainCfg

    defaults = {f.name: f.default for f in dataclasses.fields(TrainCfg)}
    shown, wrong = set(), []
    for line in (ROOT / "docs" / "python-api.md").read_text("utf-8").splitlines():
        row = re.match(r"\| ((?:`\w+`(?:, )?)+) \|([^|]*)\|", line)
        if not row or not {n for n in re.findall(r"`(\w+)`", row.group(1))} <= defaults.keys():
            continue
        names = re.findall(r"`(\w+)`", row.group(1))
        shown.update(names)
        if row.group(2).strip():  # a row of objects (cache, compute, augment) names no value
            values = [ast.literal_eval(v.strip()) for v in row.group(2).split(",")]
            wrong += [f"{n}: documented {v!r}, TrainCfg has {defaults[n]!r}"
                      for n, v in zip(names, values, strict=True) if v != defaults[n]]
    assert not wrong, "\n".join(wrong)
    assert shown == defaults.keys(), f"TrainCfg fields missing from docs/python-api.md: {sorted(defaults.keys() - shown)}"
