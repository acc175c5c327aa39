"""Real node processes for the consortium tests: geth Clique validators and anvil.

The clients come from ``make nodes`` (``make test`` installs them); without them these
tests are skipped with the reason, never faked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from healthnft.errors import NotFound
from healthnft.ledger.client import Ledger
from healthnft.ledger.nodes import CliqueNetwork, tool_path


def _installed(name: str) -> Path:
    try:
        path = tool_path(name)
    except NotFound as exc:
        pytest.skip(f"{exc} — the consortium tests need real clients")
    if not path.exists():
        pytest.skip(f"{name} is not at {path}: run `make nodes`")
    return path


@pytest.fixture(scope="session")
def geth() -> Path:
    return _installed("geth")


@pytest.fixture(scope="session")
def anvil() -> Path:
    return _installed("anvil")


@dataclass
class Consortium:
    net: CliqueNetwork
    w3: Web3
    ledger: Ledger
    admin: LocalAccount
    hospital: LocalAccount
    patient: LocalAccount

    def mint(self, count: int = 1) -> tuple[range, dict]:
        """Mint ``count`` tokens to the patient as the hospital: (token ids, receipt)."""
        start = self.ledger.next_token_id()
        call = self.ledger.mint_call(self.patient.address, count, start, os.urandom(32))
        receipt = self.ledger.transact(self.hospital, call)
        return range(start, start + count), receipt


@pytest.fixture(scope="module")
def consortium(geth: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consortium]:
    """Three Clique validators with the project's contracts (for paris: no PUSH0 on a
    Clique chain), a hospital issuer and a patient registered; stopped afterwards."""
    admin, hospital, patient = (Account.create() for _ in range(3))
    base = tmp_path_factory.mktemp("clique")
    with CliqueNetwork.start(base, validators=3, alloc={admin.address: 10**27}) as net:
        w3 = net.web3(0)
        ledger = Ledger.deploy(w3, admin, evm_version="paris")
        for acct in (hospital, patient):
            ledger.fund(admin, acct.address, 10**20)
        ledger.register(admin, hospital.address, "hospital", os.urandom(32))
        ledger.set_issuer(admin, hospital.address)
        ledger.register(admin, patient.address, "patient", os.urandom(32))
        yield Consortium(net, w3, ledger, admin, hospital, patient)
