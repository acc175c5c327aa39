"""De-identified copy links, kept for callers that open them by path.

The links now live in :mod:`healthnft.store.derivatives` (``DerivativeLinks``, also
reachable as ``Catalog.derivatives`` over the catalogue's own connection). This class
opens ``index.sqlite`` on its own, under the store's policy and schema ladder, for
code that still constructs ``Derivatives(home / "index.sqlite")``.
"""

from __future__ import annotations

from pathlib import Path

from healthnft.store import INDEX, DerivativeLinks, open_database


class Derivatives(DerivativeLinks):
    """The derivative links of one home, over a connection of their own."""

    def __init__(self, path: Path) -> None:
        self._own = open_database(path, INDEX)
        super().__init__(self._own)

    def close(self) -> None:
        self._own.close()
