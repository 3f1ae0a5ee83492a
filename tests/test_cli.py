"""The command-line frame: what a user's mistake, a failed run and a bug each look like."""
from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys

import pytest

from muses.cli import EXIT_FAILURE, EXIT_USAGE, UsageError, main, run_command
from muses.collection.store import Item, Store
from muses.errors import RunFailed
from muses.settings import CONFIG_NAME


def _error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


def test_a_users_mistake_is_one_line_and_exit_2(project, capsys):
    assert main(["export-classification-data", "--split", "0.5,0.6,0"]) == EXIT_USAGE
    (line,) = _error_lines(capsys)
    assert line.startswith("muses export-classification-data: error: split '0.5,0.6,0': give three fractions")


def test_a_failed_run_is_one_line_and_exit_1(project, capsys):
    (project.root / CONFIG_NAME).write_text("[store]\nbusy_timeout = 0.2\n")
    Store.for_project(project)  # the store exists, so the lock below is on its file
    holder = sqlite3.connect(project.root / "muses.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program writing
    records = project.root / "records.csv"
    records.write_text("id,title\n1,Bust of a man\n", encoding="utf-8")
    try:
        assert main(["import", str(records)]) == EXIT_FAILURE
    finally:
        holder.rollback()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "muses.sqlite is locked: another muses command (or another program)" in err.strip().splitlines()[-1]


@pytest.mark.parametrize("error, code", [(UsageError("bad flag"), EXIT_USAGE), (RunFailed("disk full"), EXIT_FAILURE)])
def test_run_command_turns_muses_errors_into_their_exit_code(error, code, capsys):
    def command(_args):
        raise error

    assert run_command(argparse.Namespace(command="x", func=command)) == code
    assert _error_lines(capsys) == [f"muses x: error: {error}"]


def test_a_bug_keeps_its_traceback():
    def command(_args):
        raise ValueError("a bug, not a user's mistake")  # once caught as a usage error: no more

    with pytest.raises(ValueError, match="a bug"):
        run_command(argparse.Namespace(command="x", func=command))


# -- a read-only project folder ---------------------------------------------------------------
def _read_only_run(project, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run muses commands with the project folder bind-mounted read-only in a private mount
    namespace: the one way to make a folder read-only for root, who ignores chmod -w."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode:
        pytest.skip("needs `unshare -m` (root or user namespaces) to make a read-only folder")
    root = str(project.root)
    script = f"mount --bind {root} {root} && mount -o remount,bind,ro {root} || exit 99\n" + "\n".join(
        f"{sys.executable} -m muses {' '.join(cmd)} --project {root}; echo \"exit=$?\" >&2" for cmd in commands
    )
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if proc.returncode == 99:
        pytest.skip(f"cannot bind-mount read-only here: {proc.stderr.strip()}")
    return proc.stderr


def test_a_read_only_project_folder_stops_each_command_with_a_message(project):
    store = Store.for_project(project)
    with store.transaction() as s:
        s.add(Item(id="1", title="Bust"))
    store.engine.dispose()  # no connection of ours keeps SQLite's -wal and -shm files in place
    err = _read_only_run(project, ["stats"], ["export-classification-data", "--min-items", "1"])
    assert "Traceback" not in err
    for command in ("stats", "export-classification-data"):
        assert f"muses {command}: error: cannot use the collection store {project.root}/muses.sqlite: " in err
    assert err.count("may be written") == 2 and err.count("exit=1") == 2
