"""The demo: a hospital mints real FHIR data into its patients' wallets.

Registers ``demo-hospital`` as an issuer, gives every patient found in the data
a wallet, mints each patient's records in one batch, and summarizes. Before each
batch is minted, its issuer attestations (W3C VCs signed with the hospital's
did:key) are verified against the chain and the demo says so, so the
credential gate is visible rather than implied. Running it again on the same
home mints nothing new (idempotent) and reports the same totals.

The node's home keeps the institutions' keystores only. A demo patient's keys are
derived from the public demo seed (:func:`~healthnft.network.demo_patient_identity`) and
the node registers the patient from the public part alone (address, encryption key,
did:key), as a hospital admits a patient from the card their wallet shows. The keys
reach the web page one patient at a time, when asked for (demo only:
``GET /api/demo/patients/{address}/keystore``), and the CLI derives them to act as a demo
patient; nothing writes them into the home. A home
made by an earlier demo, which kept its patients' keystores, loses them on the next run
(:func:`drop_patient_keystores`): they were the seed's keys, so nothing is lost. The
home says so in ``config.json`` (``"demo_patient_keys": "seed"``,
:attr:`~healthnft.network.Network.seeded_patients`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from healthnft.ingest import ingest
from healthnft.minting.attestation import AnnouncingAttestor
from healthnft.minting.pipeline import DEFAULT_BATCH_SIZE, Minter
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import Record
from healthnft.sample import write_sample

DEMO_ISSUER = "demo-hospital"
DEMO_CUSTODIANS = 3


def default_data_folder() -> Path | None:
    """``../shared/data/synthea`` (from the working folder or the repo), if present."""
    repo = Path(__file__).resolve().parents[2]
    for candidate in (Path.cwd() / "../shared/data/synthea", repo / "../shared/data/synthea"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate.resolve()
    return None


#: The demo's research institute (shares and requests in the web wallet).
DEMO_RESEARCH = "demo-research-institute"


def patient_label(net: Network, patient_ref: str | None) -> str:
    """A stable wallet label that does not reveal who the patient is: a keyed hash of
    the identifier the hospital holds for them (the FHIR Patient's id), so two people
    with one name get two wallets and one person's records one wallet."""
    secret = net.files.secret_key_path.read_bytes()
    tag = hmac.new(secret, (patient_ref or "unknown").encode(), hashlib.sha256).hexdigest()
    return f"patient-{tag[:10]}"


def run_demo(
    home: Path,
    data: Path | None,
    on_resource: Callable[[], None] | None = None,
    on_minted: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Run the demo on ``home`` and return the summary the CLI prints."""
    if data is None:
        data = default_data_folder()
        if data is None:
            data = write_sample(home / "sample-data")
            say(f"../shared/data not found: using the generated synthetic sample in {data}")
    net = Network.create(home, DEMO_PASSPHRASE, demo=True)
    try:
        say(
            "demo keys are derived from a fixed seed and protected by the demo passphrase "
            f"{DEMO_PASSPHRASE!r}: fine for trying healthnft, never for real data"
        )
        # Rerunning the demo finds its own cast again (existing_ok): fixed labels it chose.
        net.seed_patients()  # patients registered from their public part from now on
        dropped = drop_patient_keystores(net)
        if dropped:
            say(f"removed {dropped} demo patient keystore(s) an earlier demo kept in the "
                "node's home: a patient's keys live on their device, not the node")  # fmt: skip
        hospital = net.add_participant("hospital", DEMO_ISSUER, existing_ok=True)
        for n in range(1, DEMO_CUSTODIANS + 1):  # key shares 2-of-3, registered before minting
            net.add_participant("custodian", f"custodian-{n}", existing_ok=True)
        # A research institute, so the web wallet's sharing can be tried at once.
        net.add_participant("research", DEMO_RESEARCH, existing_ok=True)
        issuer = net.identity(hospital.address)
        result = ingest([data], on_resource=on_resource)
        say(
            f"read {result.files} files: {sum(len(g.records) for g in result.patients)} patient "
            f"records validated, {result.reference_resources} reference resources not minted"
        )
        if on_total:
            on_total(sum(len(g.records) for g in result.patients))
        minter = net.minter()
        patients = []
        attested = 0
        minted_now = 0
        gas = 0
        batches = 0
        for group in result.patients:
            # Matched on the hospital's own patient id (keyed), never on a display name.
            # Registered from its public part only: the home gets no patient keystore.
            wallet = net.add_participant("patient", patient_label(net, group.patient_ref),
                                         existing_ok=True)  # fmt: skip
            attestor = AnnouncingAttestor(
                net.ledger, issuer, _batch_sizes(minter, issuer.address, wallet.address,
                                                 group.records),
                lambda n: say(f"verified {n} issuer attestations (W3C VC, EdDSA) against "
                              "the chain — minting"),
            )  # fmt: skip
            res = minter.mint(issuer, wallet.address, wallet.enc_key, group.records,
                              progress=on_minted, attestor=attestor)  # fmt: skip
            minted_now += res.minted
            attested += res.attested
            gas += res.gas_used
            batches += res.batches
            patients.append({"address": wallet.address, "name": wallet.label,
                             "records": len(net.wallet().list(wallet.address))})  # fmt: skip
        total = sum(p["records"] for p in patients)
        medicines = demo_drugs(net)
        say(f"commissioned {len(medicines['batches'])} demo medicine batches: verify a real "
            f"pack with healthnft drug verify '{medicines['real_code']}'")
        return {
            "records_minted": total,
            "patients": patients,
            "batches": net.catalog.counts()["batches"],
            "gas_per_record": round(gas / minted_now, 1) if minted_now else _stored_gas(net),
            "new_this_run": minted_now,
            "attestations_verified": attested,
            "issuer": {"name": DEMO_ISSUER, "address": hospital.address},
            "data": str(data),
            "home": str(home),
            "demo_keys": True,
            # Where the demo patients' keys are: not in the home (see the module's doc).
            "patient_keys": PATIENT_KEYS,
            # Codes outside extensible value sets (minted all the same): where, not what.
            "warnings": result.warnings,
            # Medicine packs (issue 15): a real code of a commissioned batch, an invented one.
            "drugs": medicines,
        }
    finally:
        net.close()


#: The demo's medicine makers and dispensers, and its two batches (GS1 example GTINs).
DEMO_MANUFACTURER = "demo-manufacturer"
DEMO_PHARMACY = "demo-pharmacy"
DEMO_REGULATOR = "demo-medicines-agency"
DEMO_BATCHES = (("09506000134352", "DEMO-A1", "301231", 20),
                ("09506000134376", "DEMO-B7", "291130", 12))  # fmt: skip
#: The demo products' names, by GTIN (each gets the manufacturer's product credential).
DEMO_PRODUCTS = {"09506000134352": ("Amoxicillin 500 mg capsules", "capsule", "500 mg"),
                 "09506000134376": ("Paracetamol 500 mg tablets", "tablet", "500 mg")}


def demo_drugs(net: Network) -> dict[str, Any]:
    """A manufacturer, a pharmacy and a regulator, the manufacturer's product credentials
    for two products and one commissioned batch of each (a rerun finds them again:
    issuing the same product and commissioning are idempotent). Answers the codes to try."""
    from healthnft.services import drugs

    net.add_participant("manufacturer", DEMO_MANUFACTURER, existing_ok=True)
    net.add_participant("pharmacy", DEMO_PHARMACY, existing_ok=True)
    net.add_participant("government", DEMO_REGULATOR, existing_ok=True)
    products = []
    for gtin, (name, form, strength) in DEMO_PRODUCTS.items():
        made = drugs.product(net, DEMO_MANUFACTURER, gtin, name, form=form, strength=strength)
        products.append({"gtin": made.gtin, "name": made.name})
    batches = []
    for gtin, lot, expiry, count in DEMO_BATCHES:
        serials = [f"{lot[-2:]}{n:05d}" for n in range(1, count + 1)]
        done = drugs.commission(net, DEMO_MANUFACTURER, gtin, lot, expiry, serials)
        batches.append({"gtin": done.gtin, "lot": done.lot, "expiry": done.expiry,
                        "packs": done.packs, "first_serial": serials[0]})  # fmt: skip
    gtin, lot, expiry, _ = DEMO_BATCHES[0]
    return {
        "manufacturer": DEMO_MANUFACTURER,
        "pharmacy": DEMO_PHARMACY,
        "regulator": DEMO_REGULATOR,
        "products": products,
        "batches": batches,
        "real_code": f"(01){gtin}(17){expiry}(10){lot}(21){batches[0]['first_serial']}",
        "invented_code": f"(01){gtin}(17){expiry}(10){lot}(21)FAKE12345",
    }


#: Where a demo patient's keys live (the summary says it; README shows the commands).
PATIENT_KEYS = ("none in the node's home: the web page's 'Use a demo patient' loads one "
                "into the browser; the CLI derives one from the public demo seed when a "
                "command acts as that patient")  # fmt: skip


def drop_patient_keystores(net: Network) -> int:
    """Delete the keystores of demo patients an earlier demo kept in the node's home
    (only keys the public demo seed gives again); answers how many went."""
    from healthnft.network import demo_patient_identity

    if not net.seeded_patients or not net.files.keystore_dir.is_dir():
        return 0
    seeded = {p.address.lower() for p in net.catalog.participants("patient")
              if demo_patient_identity(p.label).address.lower() == p.address.lower()}  # fmt: skip
    dropped = 0
    for path in net.files.keystore_dir.glob("*.json"):
        if path.stem.lower() in seeded:
            path.unlink()
            dropped += 1
    return dropped


def _batch_sizes(minter: Minter, issuer: str, owner: str, records: list[Record]) -> list[int]:
    """How many records each batch of ``minter.mint(…, records)`` will attest.

    The records not catalogued yet (after settling any batch a crash left behind,
    which ``mint`` would do first), without repeats, in batches of the default size:
    exactly what the pipeline will ask the attestor for.
    """
    minter.recover()
    keys = {minter.record_key(issuer, owner, r.canonical) for r in records}
    fresh = len(keys - minter.catalog.known_record_keys(keys))
    full, rest = divmod(fresh, DEFAULT_BATCH_SIZE)
    return [DEFAULT_BATCH_SIZE] * full + ([rest] if rest else [])


def _stored_gas(net: Network) -> float:
    """Gas per record over all batches minted in this home (for a re-run that mints nothing)."""
    gas, records = net.catalog.journal.minted_gas()
    return round(gas / records, 1) if gas and records else 0.0
