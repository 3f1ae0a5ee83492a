"""Fixtures for the harness's tests (the product's are in tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from muses.testing.catalog import new_project


@pytest.fixture(scope="session")
def met_sample() -> Path:
    """The bundled Met records and photographs (examples/met-demo)."""
    return Path(__file__).resolve().parents[2] / "examples" / "met-demo"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder made by `muses init`, also set as $MUSES_PROJECT."""
    return new_project(tmp_path / "proj", monkeypatch)
