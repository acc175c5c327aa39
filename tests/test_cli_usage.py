"""A mistyped command line is one ``error:`` line and the exit code of InvalidInput.

Typer (click) answers usage errors with a usage banner and a boxed message on several
lines, and exits 2 by its own rule; here every usage error (a value of the wrong type,
a missing argument or option, an unknown option or command, an extra argument) is one
line naming the mistake and where to read the help, with the exit code of the error
tree's InvalidInput, the class for "what the caller gave cannot be used as given".
The values typed are not repeated: an argument may be a patient's name.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from healthnft.errors import InvalidInput

NAME = "John Q Doe"

CASES = [
    pytest.param(["wallet", "show", "abc"], ("token_id", "integer"), "wallet show",
                 id="argument-of-the-wrong-type"),
    pytest.param(["wallet", "show", NAME], ("token_id",), "wallet show",
                 id="a-name-where-a-number-goes"),
    pytest.param(["share", "1", "--days", "abc"], ("--days", "integer"), "share",
                 id="option-of-the-wrong-type"),
    pytest.param(["wallet", "show"], ("missing", "token_id"), "wallet show",
                 id="missing-argument"),
    pytest.param(["mint", "x.json", "--patient", "0x0"], ("missing", "--issuer"), "mint",
                 id="missing-option"),
    pytest.param(["wallet", "show", "1", "--bogus"], ("no such option", "--bogus"),
                 "wallet show", id="unknown-option"),
    pytest.param(["wallet", "shows", "1"], ("no such command", "shows"), "wallet",
                 id="unknown-command"),
    pytest.param(["nosuch"], ("no such command",), "", id="unknown-top-level-command"),
    pytest.param(["wallet", "show", "1", NAME], ("unexpected extra argument",), "wallet show",
                 id="extra-argument"),
    pytest.param(["wallet", "list", "--owner"], ("--owner", "requires an argument"), None,
                 id="option-without-its-value"),  # click's parser knows no command here
]  # fmt: skip


@pytest.mark.parametrize(("args", "fragments", "command"), CASES)
def test_a_usage_error_is_one_line_with_the_invalid_input_exit_code(
    tmp_path: Path, args: list[str], fragments: tuple[str, ...], command: str | None
) -> None:
    proc = run_cli(tmp_path / "home", *args)
    assert proc.returncode == InvalidInput.exit_code == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: ") and "Traceback" not in line, line
    assert "internal error" not in line and "╭" not in line and "Usage:" not in line, line
    for fragment in fragments:
        assert fragment.lower() in line.lower(), f"{fragment!r} not in {line!r}"
    if command is not None:
        help_command = " ".join(filter(None, ["healthnft", command, "--help"]))
        assert line.endswith(f"(try '{help_command}')"), line
    assert "John" not in line  # what was typed is not repeated
    assert not (tmp_path / "home").exists()  # nothing was opened, let alone created


@pytest.mark.parametrize("args", [["--help"], ["wallet", "--help"], ["shc", "export", "--help"]])
def test_help_still_prints_and_exits_0(tmp_path: Path, args: list[str]) -> None:
    proc = run_cli(tmp_path / "home", *args)
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "--help" in proc.stdout
    assert proc.stderr == ""


def test_a_group_without_its_command_shows_the_group_help(tmp_path: Path) -> None:
    proc = run_cli(tmp_path / "home", "wallet")
    assert proc.returncode == InvalidInput.exit_code
    assert "Usage:" in proc.stdout and "show" in proc.stdout
    assert proc.stderr == ""


def test_a_command_that_exits_by_itself_keeps_its_code(tmp_path: Path) -> None:
    """``shc verify`` exits 1 for an invalid card (typer.Exit): not a usage error."""
    card = tmp_path / "card.txt"
    card.write_text("eyJ6aXAiOiJERUYiLCJhbGciOiJFUzI1NiJ9.AAAA.AAAA\n")
    proc = run_cli(tmp_path / "home", "shc", "verify", str(card), "--json")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("{")
