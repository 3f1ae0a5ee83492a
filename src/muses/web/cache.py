"""definitions.toml for the web app: parsed once per version of the file, not on every request."""
from __future__ import annotations

import os
from pathlib import Path

from muses.labeling.definitions import Definitions, load_definitions_cached


class DefinitionsCache:
    """The project's definitions, or None while there is no definitions.toml."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def get(self) -> Definitions | None:
        return load_definitions_cached(self.path) if self.path.is_file() else None
