"""Joining a network, admitting members, and a local consortium's life cycle.

Thin over :mod:`healthnft.consortium`: the CLI parses, calls one function here and
renders its result.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthnft.consortium import Admitted, Card, Joined, read_application, read_json_file
from healthnft.consortium import admit as _admit
from healthnft.consortium import application_terms as _application_terms
from healthnft.consortium import card as _card
from healthnft.consortium import join as _join
from healthnft.consortium import network_document as _network_document
from healthnft.consortium.membership import LINK_SCHEME
from healthnft.errors import AccessDenied, InvalidInput

if TYPE_CHECKING:
    from healthnft.network import Network

__all__ = ["Admitted", "Card", "Joined", "admit", "admit_local", "application_terms", "card",
           "down", "draw_link", "join", "network_document", "register_patient", "status",
           "up"]  # fmt: skip


def join(home: Path, passphrase: str, network_file: Path, kind: str, name: str, *,
         rpc_url: str | None = None) -> Joined:  # fmt: skip
    """A new home in ``home`` attached to the network ``network_file`` describes, with its
    membership application written next to its config (nothing written on a refusal)."""
    return _join(home, passphrase, read_json_file(network_file, "network file"), kind, name,
                 rpc_url=rpc_url)  # fmt: skip


def admit(net: Network, application: str | Path, *, issuer: bool | None = None,
          passphrase: str | None = None) -> Admitted:  # fmt: skip
    """Register an applicant on chain (the admin's home), from its application file or
    the ``healthnft:`` link its wallet shows (the same signed, public document)."""
    return _admit(net, read_application(application), issuer=issuer,
                  passphrase=passphrase)  # fmt: skip


def application_terms(net: Network) -> dict[str, Any]:
    """The public terms a browser wallet signs its membership application with (format,
    chain id, registry): its ``healthnft:`` card, which ``admit`` takes."""
    return _application_terms(net)


def register_patient(net: Network, hospital: str, link: str,
                     passphrase: str | None = None) -> Admitted:  # fmt: skip
    """A hospital registers a patient at its node, from the ``healthnft:`` link the
    patient's wallet shows: public values the patient signed, never a secret. Only a link
    (never a path: this is what a web request gives), only patients (an institution is
    admitted by the admin or the council), only by a hospital this home acts for, and
    only where this home holds the enrolment key (the admin's: a network it deployed);
    else :class:`AccessDenied` naming who does it. Retry safe, as :func:`admit`."""
    if net.participant(hospital).kind != "hospital" or not net.has_key(hospital):
        raise AccessDenied("only a hospital of this node registers patients")
    if not link.strip().startswith(LINK_SCHEME):
        raise InvalidInput(f"paste the {LINK_SCHEME} link the patient's wallet shows")
    doc = read_application(link)
    if doc.get("kind") != "patient":
        raise AccessDenied("a hospital registers patients only: the network's admin or "
                           "council admits institutions")  # fmt: skip
    return _admit(net, doc, passphrase=passphrase)


def card(net: Network, passphrase: str | None = None) -> Card:
    """This joined home's membership card (address, kind, chain, encryption public key,
    ``healthnft:`` link): what a hospital or enrolment office registers it from."""
    return _card(net, passphrase)


def draw_link(link: str, path: Path) -> None:
    """A ``healthnft:`` link drawn as a QR code in ``path`` (.png or .svg, by segno)."""
    import segno

    if path.suffix.lower() not in (".png", ".svg"):
        raise InvalidInput(f"--qr {path.name}: write the QR code as .png or .svg")
    try:
        segno.make(link, error="m").save(str(path), scale=4)
    except OSError:
        raise InvalidInput(f"--qr: cannot write {path}") from None


def network_document(net: Network) -> dict[str, Any]:
    """The network file of the network ``net`` is on (no secret in it)."""
    return _network_document(net)


def up(root: Path, *, validators: int = 3, custodians: int = 3, chain_id: int | None = None,
       say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:  # fmt: skip
    """Start (or complete) a local consortium in ``root``: validators, admin home, one
    joined and admitted home per founding institution, each served by its own process."""
    from healthnft.consortium import local

    return local.up(root, validators=validators, custodians=custodians,
                    chain_id=chain_id or local.DEFAULT_CHAIN_ID, say=say)  # fmt: skip


def admit_local(root: Path, application_file: str | Path,
                say: Callable[[str], None] = lambda _m: None) -> Admitted:  # fmt: skip
    """Admit an applicant to the local consortium in ``root``: an institution by three of
    the founders' council, a patient by the admin home (the patients' enrolment office)."""
    from healthnft.consortium import local

    return local.admit_application(root, application_file, say)


def status(root: Path) -> dict[str, Any]:
    """Whether every process of the consortium in ``root`` runs and answers."""
    from healthnft.consortium import local

    return local.status(root)


def down(root: Path) -> dict[str, Any]:
    """Stop every process the consortium in ``root`` recorded (SIGTERM, then SIGKILL)."""
    from healthnft.consortium import local

    return local.down(root)
