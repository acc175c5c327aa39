"""Reads on a JSON-RPC node (anvil): views as web3 reads them, and reads sent ahead in
one batch request answer only the identical read, once, in the thread that sent them.

The node is stopped inside the read-ahead to tell apart a read answered from the batch
(it still succeeds) from one that went to the node (it is refused as unreachable).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from eth_account import Account
from web3.contract.contract import ContractFunction

from conftest import need_tool
from healthnft.errors import Unavailable
from healthnft.ledger import nodes
from healthnft.ledger.consent import Consent
from healthnft.network import Network

PASS = "read-ahead-pass"


@pytest.fixture
def chain(tmp_path: Path):
    """A home deployed on its own anvil, one hospital registered; the node is stopped
    at the end if the test did not stop it."""
    need_tool("anvil")
    admin = Account.create()
    anvil = nodes.start_anvil(tmp_path / "anvil", prefund=[admin.address])
    net = Network.create(tmp_path / "home", PASS, rpc_url=anvil.rpc_url,
                         admin_secret=bytes(admin.key))  # fmt: skip
    hospital = net.add_participant("hospital", "read-ahead-hospital", PASS)
    yield net, anvil, hospital.address
    net.close()
    anvil.stop()


def test_views_answer_what_web3_answers(chain) -> None:
    """The views' own encoding gives web3's answers: tuples, addresses, bytes, arrays."""
    net, _anvil, hospital = chain
    ledger = net.ledger
    consent = Consent(ledger)
    calls = [ledger.registry.functions.participant(hospital),
             ledger.registry.functions.is_member(hospital),
             ledger.registry.functions.did_key(hospital),
             ledger.token.functions.owners_of([1, 2, 3]),
             ledger.token.functions.next_token_id(),
             consent.contract.functions.grants(7)]  # fmt: skip
    for call in calls:
        assert call.call() == ContractFunction.call(call), call.fn_name


def test_read_ahead_answers_the_same_read_once_in_its_thread(chain) -> None:
    net, anvil, hospital = chain
    ledger = net.ledger
    expected = ledger.participant(hospital)
    view = ledger.registry.functions.participant(hospital)
    with ledger.read_ahead([view], nonces=[hospital]) as batched:
        assert batched
        anvil.stop()  # from here, a read that reaches the node is refused
        elsewhere: list[BaseException] = []

        def other_thread() -> None:
            try:
                ledger.participant(hospital)
            except Unavailable as exc:
                elsewhere.append(exc)

        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
        assert elsewhere, "another thread's read was answered from this thread's batch"
        assert ledger.participant(hospital) == expected  # answered from the batch
        assert ledger.w3.eth.get_transaction_count(hospital, "pending") == 0
        with pytest.raises(Unavailable):
            ledger.participant(hospital)  # used once: this one went to the node
        with pytest.raises(Unavailable):
            ledger.is_member(hospital)  # never sent ahead


def test_read_ahead_without_a_node_falls_back_to_each_read(chain) -> None:
    """A batch that fails keeps nothing: each read then asks the node (and says it is
    unreachable), as without a read-ahead."""
    net, anvil, hospital = chain
    anvil.stop()
    with net.ledger.read_ahead([net.ledger.registry.functions.participant(hospital)]) as batched:
        assert not batched
        with pytest.raises(Unavailable):
            net.ledger.participant(hospital)
