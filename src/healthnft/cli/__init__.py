"""``healthnft``: the command line over a home directory.

One module per command group (:mod:`.setup`, :mod:`.records`, :mod:`.consent`,
:mod:`.credentials`, :mod:`.recovery`, :mod:`.drugs`...), each thin over
:mod:`healthnft.services`. Every command
accepts ``--home`` (before the command name; default ``$HEALTHNFT_HOME`` or
``~/.healthnft``) and most take ``--json``. A
:class:`~healthnft.errors.HealthNFTError` becomes one ``error:`` line on stderr
and the exit code of its class; so does a mistyped command line (a usage error:
the exit code of :class:`~healthnft.errors.InvalidInput`, the values typed not
repeated); any other exception prints its type only (never its message, which
could quote input) unless ``HEALTHNFT_DEBUG=1``.
"""

from __future__ import annotations

import os
import re
import sys

import typer

from healthnft.cli import (  # noqa: F401 - registers commands
    consent,
    consortium,
    credentials,
    custodian,
    drugs,
    governance,
    records,
    recovery,
    setup,
)
from healthnft.cli.common import app
from healthnft.errors import HealthNFTError, InvalidInput

#: Exit code of an unexpected failure (BSD sysexits' EX_SOFTWARE).
INTERNAL_ERROR = 70

#: click's ``UsageError`` as typer ships it (its own copy of click since typer 0.26, which
#: does not export the class): the parent of ``typer.BadParameter``, and of every other
#: "the command line is wrong" error (missing or unknown option, unknown command…).
_UsageError: type[Exception] = typer.BadParameter.__mro__[1]
#: click ends these messages with the values it could not place: not repeated here.
_EXTRA_ARGS = re.compile(r"^Got unexpected extra argument")


def main() -> None:
    """Entry point: run the app and turn errors into one clear line."""
    try:
        # Not standalone: typer returns an exit code and raises usage errors to us
        # instead of printing its own multi-line box.
        code = app(prog_name="healthnft", standalone_mode=False)
    except HealthNFTError as exc:
        sys.stderr.write(f"error: {exc}\n")  # one line, never wrapped
        sys.exit(exc.exit_code)
    except _UsageError as exc:
        _usage_error(exc)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`healthnft wallet list | head`): nothing to report, and
        # Python must not fail again flushing stdout at exit (see the signal module docs).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - last line of defence, see module doc
        if os.environ.get("HEALTHNFT_DEBUG"):
            raise
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}); rerun with HEALTHNFT_DEBUG=1\n"
        )
        sys.exit(INTERNAL_ERROR)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(exc: Exception) -> None:
    """A usage error: one line and InvalidInput's exit code (a command group called
    without its command shows the group's help instead, as before)."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        sys.stdout.write(ctx.get_help() + "\n")
        sys.exit(InvalidInput.exit_code)
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(message.split())  # one line, whatever click wrapped
    if _EXTRA_ARGS.match(message):
        message = "unexpected extra argument(s)"
    message = message[:1].lower() + message[1:].rstrip(".")
    if ctx is not None:  # click knows which command was parsed (not always: a bare --opt)
        message += f" (try '{ctx.command_path} --help')"
    sys.stderr.write(f"error: {message}\n")
    sys.exit(InvalidInput.exit_code)


__all__ = ["app", "main"]
