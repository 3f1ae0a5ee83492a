import argparse
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from muses.cli import build_parser, main
from muses.settings import CONFIG_NAME, ConfigError, Project, Settings, find_project, init_project


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
        init_project(d)
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
    assert project.settings.images.max_side == 128
    assert project.settings.images.quality == 90  # default kept
    assert str(project.model_path) == "/m/x.safetensors"


def test_broken_config_names_the_file(tmp_path):
    (tmp_path / CONFIG_NAME).write_text("[images\n")
    with pytest.raises(ConfigError, match=CONFIG_NAME):
        Project.load(tmp_path)


def test_missing_project_folder_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="muses init"):
        find_project(tmp_path / "nope")


def test_a_folder_without_muses_toml_is_not_a_project(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MUSES_PROJECT", raising=False)
    project = find_project()  # a plain folder gives the defaults, enough to read a model file
    assert project.settings == Settings()
    with pytest.raises(ConfigError, match=r"no muses.toml.*muses init .*--project DIR or \$MUSES_PROJECT"):
        project.require_config()
    assert main(["stats"]) == 2
    assert "is not a muses project" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no muses.sqlite left behind


def _settings_from(tmp_path, text: str):
    (tmp_path / CONFIG_NAME).write_text(text)
    return Project.load(tmp_path).settings


def test_template_holds_every_setting_at_its_default(tmp_path):
    init_project(tmp_path)
    assert Project.load(tmp_path).settings == Settings()
    text = (tmp_path / CONFIG_NAME).read_text()
    for table in fields(Settings):
        for key in fields(getattr(Settings(), table.name)):
            if is_dataclass(getattr(getattr(Settings(), table.name), key.name)):
                continue
            assert f"\n{key.name} = " in text, f"[{table.name}] {key.name} missing from the template"


def test_settings_are_typed(tmp_path):
    settings = _settings_from(tmp_path, "[images]\nroots = ['/data/photos', 'more']\n[store]\nbusy_timeout = 2\n")
    assert settings.images.roots == ("/data/photos", "more")
    assert settings.store.busy_timeout == 2.0 and isinstance(settings.store.busy_timeout, float)
    assert Project.load(tmp_path).image_roots == [Path("/data/photos"), tmp_path.resolve() / "more"]


@pytest.mark.parametrize("text, message", [
    ("[images]\nmax_sides = 128\n", r"line 2, \[images\] max_sides: unknown key; valid keys in \[images\]: dir, max_side"),
    ("[imagse]\ndir = 'x'\n", r"line 1, \[imagse\]: unknown key; valid keys in muses.toml: store, images"),
    ("[classification.naive_classification]\nmodel = 'x'\n", r"line 2, \[classification.naive_classification\] model: unknown key"),
    ("[web]\nport = '80'\n", r"\[web\] port: expected a whole number, got '80'"),
    ("[web]\nport = true\n", r"\[web\] port: expected a whole number, got True"),
    ("[images]\nallow_network = 1\n", r"allow_network: expected true or false"),
    ("[images]\nroots = '/data'\n", r"roots: expected a list of strings"),
    ("[images]\nquality = 0\n", r"quality: must be between 1 and 100, got 0"),
    ("[store]\nbusy_timeout = -1\n", r"busy_timeout: must be at least 0.1"),
    ("images = 3\n", r"\[images\] must be a table"),
])
def test_bad_settings_are_refused_with_what_was_expected(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _settings_from(tmp_path, text)


def test_init_reports_a_full_disk_without_a_traceback(tmp_path, capsys):
    (tmp_path / CONFIG_NAME).symlink_to("/dev/full")  # every write there fails with ENOSPC
    assert main(["init", "--force", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err


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
