"""``healthnft``: the command line over a home directory.

One module per command group (:mod:`.setup`, :mod:`.records`, :mod:`.consent`,
:mod:`.credentials`), each thin over :mod:`healthnft.services`. Every command
accepts ``--home`` (before the command name; default ``$HEALTHNFT_HOME`` or
``~/.healthnft``) and most take ``--json``. A
:class:`~healthnft.errors.HealthNFTError` becomes one ``error:`` line on stderr
and the exit code of its class; any other exception prints its type only (never
its message, which could quote input) unless ``HEALTHNFT_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys

from healthnft.cli import consent, credentials, records, setup  # noqa: F401 - registers commands
from healthnft.cli.common import app
from healthnft.errors import HealthNFTError

#: Exit code of an unexpected failure (BSD sysexits' EX_SOFTWARE).
INTERNAL_ERROR = 70


def main() -> None:
    """Entry point: run the app and turn errors into one clear line."""
    try:
        app()
    except HealthNFTError as exc:
        sys.stderr.write(f"error: {exc}\n")  # one line, never wrapped
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last line of defence, see module doc
        if os.environ.get("HEALTHNFT_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}); rerun with HEALTHNFT_DEBUG=1\n"
        )
        sys.exit(INTERNAL_ERROR)


__all__ = ["app", "main"]
