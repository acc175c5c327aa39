"""What every command shares: the home, the output, the options, one error rule.

Commands are thin: parse the arguments, call one function of
:mod:`healthnft.services`, render its result (a table or line for people,
``--json`` for scripts). A :class:`~healthnft.errors.HealthNFTError` becomes one
``error:`` line on stderr and its class's exit code (see :mod:`healthnft.errors`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from healthnft.network import Network


def default_home() -> Path:
    """$HEALTHNFT_HOME, else ~/.healthnft (kept here so --help needs no web3 import)."""
    return Path(os.environ.get("HEALTHNFT_HOME") or Path.home() / ".healthnft")


def _typer(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True)


app = typer.Typer(
    help="Patient-owned health records as NFTs on a permissioned EVM ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
wallet_app = _typer("A patient's wallet: list and open records, present credentials.")
chain_app = _typer("Inspect the ledger.")
participant_app = _typer("Network participants.")
policy_app = _typer("Consent policies that approve matching requests.")
shc_app = _typer("SMART Health Cards: verify (and export) cards.")
credential_app = _typer(
    "Verifiable credentials: record attestations, patient identity, presentations."
)
for _name, _sub in (("wallet", wallet_app), ("chain", chain_app),
                    ("participant", participant_app), ("policy", policy_app),
                    ("shc", shc_app), ("credential", credential_app)):  # fmt: skip
    app.add_typer(_sub, name=_name)

out = Console(soft_wrap=True)  # long addresses stay on one line
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document (for scripts).")]
PassOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase",
        help="Keystore passphrase (else $HEALTHNFT_PASSPHRASE; demo homes use the demo's).",
        show_default=False,
    ),
]
PURPOSE_HELP = "treatment|research|insurance|public-health"


class _State:
    home: Path = default_home()
    command: str = "healthnft"  # the command run (never its arguments): names a writer


state = _State()


@app.callback()
def _main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Node directory (default: $HEALTHNFT_HOME or ~/.healthnft).",
            show_default=False,
        ),
    ] = None,
) -> None:  # fmt: skip
    """Patient-owned health records as NFTs on a permissioned EVM ledger."""
    state.home = (home or default_home()).expanduser()
    state.command = " ".join(["healthnft", *filter(None, [ctx.invoked_subcommand])])


def emit(data: Any) -> None:
    """One JSON document on stdout (``--json``)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


#: Warnings printed in full; more are counted (the --json result always has them all).
MAX_WARNINGS_SHOWN = 20


def warn(lines: list[str]) -> None:
    """Warnings on stderr, one a line, the first :data:`MAX_WARNINGS_SHOWN` of them."""
    for line in lines[:MAX_WARNINGS_SHOWN]:
        err.print(f"warning: {line}", markup=False, highlight=False, soft_wrap=True)
    if len(lines) > MAX_WARNINGS_SHOWN:
        err.print(f"warning: and {len(lines) - MAX_WARNINGS_SHOWN} more", highlight=False)


def say(as_json: bool, data: Any, line: str) -> None:
    """``data`` as JSON for scripts, else ``line`` for people."""
    emit(data) if as_json else out.print(line)


def verdict(as_json: bool, data: dict[str, Any], line: str) -> NoReturn:
    """Print a check's result and exit 0 when valid, 1 when not (scripts test the code)."""
    if as_json:
        emit(data)
    else:
        (sys.stdout if data["valid"] else sys.stderr).write(line + "\n")
    raise typer.Exit(0 if data["valid"] else 1)


@contextmanager
def network(write: bool = True, check_index: bool = True) -> Iterator[Network]:
    """The home named by --home, opened for one command and closed after it.

    A command that may change the home (``write``, the default) holds its writer lock
    while it runs: a second writer, such as ``serve``, is named in a clear refusal.
    ``check_index=False`` opens a home whose index is behind the chain (``doctor``)."""
    from healthnft.services.node import open_network

    with writing() if write and state.home.is_dir() else nullcontext():
        net = open_network(state.home, check_index=check_index)
        try:
            yield net
        finally:
            net.close()


def writing() -> AbstractContextManager[object]:
    """The home's writer lock, held in this command's name (never its arguments)."""
    from healthnft.services.node import writer_lock

    return writer_lock(state.home, state.command)


def progress_bar(json_mode: bool) -> Progress:
    """Progress on stderr (never mixed into --json output on stdout)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=json_mode,
        disable=json_mode and not err.is_terminal,
    )
