"""The original CLEO names, kept for code written against them: ``helpers`` and ``definitions``.

A compatibility layer over the use-case layer (:mod:`muses.actions`): nothing inside muses
imports this package. Like the original, its calls find the project themselves (``project=``,
else ``$MUSES_PROJECT``, else the current folder); the actions take it as an argument.
"""
from __future__ import annotations

import os

from muses.settings import Project, find_project


def resolve_project(project: Project | str | os.PathLike | None = None) -> Project:
    """The project a call of the original's API works in."""
    return project if isinstance(project, Project) else find_project(project)
