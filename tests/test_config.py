import pytest

import argparse

from muses.cli import build_parser, main
from muses.settings import CONFIG_NAME, ConfigError, Project, find_project, init_project


def test_init_writes_commented_config_and_definitions(tmp_path):
    written = init_project(tmp_path / "p")
    assert sorted(p.name for p in written) == ["definitions.toml", CONFIG_NAME]
    text = (tmp_path / "p" / CONFIG_NAME).read_text()
    assert text.lstrip().startswith("#")
    project = Project.load(tmp_path / "p")
    assert project.model_path == (tmp_path / "p" / "models" / "naive.safetensors").resolve()
    assert project.store_url.startswith("sqlite:///") and project.store_url.endswith("muses.sqlite")


def test_init_never_overwrites_without_force(tmp_path):
    init_project(tmp_path)
    (tmp_path / CONFIG_NAME).write_text("[store]\nurl = 'sqlite:///x.db'\n")
    assert init_project(tmp_path) == []
    assert Project.load(tmp_path).store_url == "sqlite:///x.db"
    assert len(init_project(tmp_path, force=True)) == 2


def test_project_lookup_order(tmp_path, monkeypatch):
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    monkeypatch.chdir(c)
    monkeypatch.delenv("MUSES_PROJECT", raising=False)
    assert find_project().root == c.resolve()
    monkeypatch.setenv("MUSES_PROJECT", str(b))
    assert find_project().root == b.resolve()
    assert find_project(a).root == a.resolve()


def test_user_config_overrides_defaults_key_by_key(tmp_path):
    (tmp_path / CONFIG_NAME).write_text(
        "[images]\nmax_side = 128\n[classification.naive_classification]\nmodel_path = '/m/x.safetensors'\n"
    )
    project = Project.load(tmp_path)
    assert project.config["images"]["max_side"] == 128
    assert project.config["images"]["quality"] == 90  # default kept
    assert str(project.model_path) == "/m/x.safetensors"


def test_broken_config_names_the_file(tmp_path):
    (tmp_path / CONFIG_NAME).write_text("[images\n")
    with pytest.raises(ConfigError, match=CONFIG_NAME):
        Project.load(tmp_path)


def test_missing_project_folder_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="muses init"):
        find_project(tmp_path / "nope")


def test_cli_init_and_help(tmp_path, capsys):
    assert main(["init", str(tmp_path / "q")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["init", str(tmp_path / "q")]) == 0
    assert "nothing written" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "init" in capsys.readouterr().out


def _commands() -> list[str]:
    (subparsers,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(subparsers.choices)


@pytest.mark.parametrize("command", _commands())
def test_every_command_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"examples:\n  muses {command}" in capsys.readouterr().out
