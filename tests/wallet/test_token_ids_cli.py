"""A token id that cannot name a record is answered by the CLI exactly like one that was
never minted: one ``error:`` line and NotFound's exit code (issue #12: 2^64 and up said
"internal error (OverflowError)", a negative id "internal error (MismatchedABI)").

Nothing here changes the home: every command is refused before it acts.
"""

from __future__ import annotations

import pytest

from conftest import run_cli
from healthnft.errors import NotFound
from healthnft.services.access import NOT_VISIBLE

NEVER_MINTED = 999_999
OUT_OF_RANGE = (2**64, 2**256 + 1, -1)


def _commands(summary: dict) -> dict[str, list[str]]:
    """Each command that takes a token id, with the id as ``{t}``."""
    owner = summary["patients"][0]["address"]
    other = summary["patients"][1]["address"]
    issuer = summary["issuer"]["name"]
    return {
        "open": ["open", "--as", owner, "--", "{t}"],
        "wallet show": ["wallet", "show", "--", "{t}"],
        "transfer": ["transfer", "--owner", owner, "--to", other, "--", "{t}"],
        "burn": ["burn", "--owner", owner, "--yes", "--", "{t}"],
        "approve-amendment": [
            "approve-amendment",
            "--owner",
            owner,
            "--issuer",
            issuer,
            "--",
            "{t}",
        ],  # fmt: skip
        "share": [
            "share",
            "--owner",
            owner,
            "--to",
            other,
            "--purpose",
            "treatment",
            "--",
            "{t}",
        ],  # fmt: skip
        "deidentify": ["deidentify", "--", "{t}"],
    }


@pytest.mark.parametrize(
    "command",
    ["open", "wallet show", "transfer", "burn", "approve-amendment", "share", "deidentify"],
)
def test_an_out_of_range_token_id_is_not_found(demo_home, command: str) -> None:
    home, summary = demo_home
    argv = _commands(summary)[command]
    never = run_cli(home, *(a.format(t=NEVER_MINTED) for a in argv))
    assert never.returncode == NotFound.exit_code, never.stderr
    for token_id in OUT_OF_RANGE:
        proc = run_cli(home, *(a.format(t=token_id) for a in argv))
        assert proc.returncode == NotFound.exit_code, (token_id, proc.stderr)
        assert proc.stderr.splitlines() == [f"error: {NOT_VISIBLE}"], (token_id, proc.stderr)
        assert proc.stderr == never.stderr  # word for word what a never-minted id gets


def test_verify_answers_an_out_of_range_id_like_an_unknown_one(demo_home) -> None:
    """verify is a check, not a lookup: "invalid: unknown token", exit 1, for both."""
    home, _summary = demo_home
    never = run_cli(home, "verify", "--", str(NEVER_MINTED))
    assert never.returncode == 1 and never.stderr.startswith("invalid: unknown token")
    for token_id in OUT_OF_RANGE:
        proc = run_cli(home, "verify", "--", str(token_id))
        assert (proc.returncode, proc.stderr) == (never.returncode, never.stderr), token_id
