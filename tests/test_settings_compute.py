"""muses.toml's [compute] table: typed, checked with the line named, and overridden by the flags."""
from __future__ import annotations

import argparse
import sys

import pytest

from muses.cli import add_project_arg, main
from muses.cli.engines import add_compute_args, compute_from_args
from muses.settings import CONFIG_NAME, ComputeSettings, ConfigError, Project, init_project


def _project(tmp_path, table: str) -> Project:
    init_project(tmp_path)
    config = tmp_path / CONFIG_NAME
    template = config.read_text(encoding="utf-8")  # [compute] is the template's last table: replace it
    config.write_text(template.split("\n[compute]")[0] + f"\n[compute]\n{table}\n", encoding="utf-8")
    return Project.load(tmp_path)


def test_the_table_is_read_typed(tmp_path):
    settings = _project(tmp_path, 'engine = "ray"\naddress = "auto"\nworkers = 4').settings.compute
    assert settings == ComputeSettings(engine="ray", address="auto", workers=4) and settings.uses_ray


def test_defaults_run_here():
    assert ComputeSettings() == ComputeSettings(engine="local", address="", workers=2)


@pytest.mark.parametrize("table, message", [
    ('engin = "ray"', r"\[compute\] engin: unknown key; valid keys in \[compute\]: engine, address, workers"),
    ('engine = "spark"', r"\[compute\] engine: must be one of 'local', 'ray', got 'spark'"),
    ("workers = 0", r"\[compute\] workers: must be at least 1, got 0"),
    ("workers = '4'", r"\[compute\] workers: expected a whole number"),
])
def test_bad_values_are_refused_naming_the_line(tmp_path, table, message):
    with pytest.raises(ConfigError, match=message):
        _project(tmp_path, table)


def _args(tmp_path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_project_arg(parser)
    add_compute_args(parser)
    return parser.parse_args(["--project", str(tmp_path), *flags])


def test_flags_override_the_file_key_by_key(tmp_path):
    _project(tmp_path, 'engine = "ray"\naddress = "auto"\nworkers = 4')
    assert compute_from_args(_args(tmp_path)) is None  # no flag: the actions take the table as it is
    assert compute_from_args(_args(tmp_path, "--engine", "local", "--ray-workers", "3")) == ComputeSettings(
        engine="local", address="auto", workers=3)
    assert compute_from_args(_args(tmp_path, "--address", "ray://head:10001")).address == "ray://head:10001"


def test_a_command_follows_the_table(tmp_path, monkeypatch, capsys):
    """[compute] engine = "ray" alone sends classify to Ray: without Ray installed it says what to install."""
    _project(tmp_path, 'engine = "ray"')
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code = main(["classify", "--project", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and 'pip install "muses[ray]"' in err and "Traceback" not in err
