"""definitions.toml for the web app: parsed once, parsed again only when the file changes."""
from __future__ import annotations

import os
from pathlib import Path

from muses.labeling.definitions import Definitions, load_definitions


class DefinitionsCache:
    """The project's definitions, or None without a definitions.toml. A changed path, mtime or
    size means a changed file; a request between two edits may see either version."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # (stamp, definitions) swapped as one tuple: threads of the server share the cache.
        self._entry: tuple[tuple | None, Definitions | None] = (None, None)

    def _stamp(self) -> tuple | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (str(self.path), st.st_mtime_ns, st.st_size)

    def get(self) -> Definitions | None:
        stamp = self._stamp()
        cached_stamp, definitions = self._entry
        if stamp != cached_stamp:
            definitions = load_definitions(self.path) if stamp else None
            self._entry = (stamp, definitions)
        return definitions
