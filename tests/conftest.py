"""Fixtures shared by every test module. Add yours below, never edit another's."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real Met sample lives beside the repository in ../shared; CI lays it out the same way.
MET_SAMPLE = Path(os.environ.get("MUSES_MET_SAMPLE", REPO.parent / "shared" / "data" / "met-sample"))
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def met_sample() -> Path:
    if not (MET_SAMPLE / "records.jsonl").exists():
        pytest.fail(f"met-sample not found at {MET_SAMPLE}; set MUSES_MET_SAMPLE")
    return MET_SAMPLE


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A fresh project folder made by `muses init`, also set as $MUSES_PROJECT."""
    from muses.config import Project, init_project

    root = tmp_path / "proj"
    init_project(root)
    monkeypatch.setenv("MUSES_PROJECT", str(root))
    return Project.load(root)
