"""Pipeline benchmark: end-to-end records/s from FHIR JSON bytes to minted tokens.

Builds its input before the clock starts: every Synthea patient bundle found
in ``--data`` (else the package's generated sample) is copied again and again
and each copy is *re-identified*: every patient resource gets a fresh ``id``
(uuid4) and every reference to a resource of the bundle (``urn:uuid:<id>``,
``Type/<id>``, identifiers equal to an id) is rewritten to the fresh ids, so the
patient of each copy is a new patient and every record's canonical bytes are
distinct (the minter de-duplicates identical ones). Network resources
(Organization, Practitioner, ...) stay in the bundles, unchanged, as in
Synthea's, and are skipped by the pipeline. Each copy is serialized as one
Bundle (JSON bytes); the last copy is cut so that exactly ``--records`` patient
records go in.

Also before the clock: an embedded chain with the network's contracts in a
temporary home, a registered issuer, and every patient wallet registered (one
wallet per ``--batch-size`` records' worth of whole patients, or one per patient
with ``--wallet-per-patient``), plus a warm-up that validates and canonicalizes
one resource of each type (model classes are built once per process).

The clock then covers, on one core, the whole pipeline as the demo runs it:
parse (JSON bytes to dicts, decimals exact), validate (fhir.resources R4B and the R4
terminology bindings), clean, characterize and canonicalize (RFC 8785, decimals as
written), group by patient, then ``Minter.mint`` per wallet:
de-duplication keys, commitments, Merkle tree, AES-GCM sealing and the HPKE
batch-key wraps, the catalogue journal (SQLite), the blob store (SQLite), and
one signed mint transaction per batch on the real embedded chain.

Stage times come from ``time.perf_counter`` wrappers installed by monkeypatching
in this process only (``src`` is not changed). Times are *exclusive*: a wrapped
call inside another wrapped call is charged to its own stage only, so the
stages add up to the total; ``mint_other`` is what ``Minter.mint`` spends
outside its wrapped calls (building rows, hashing ciphertexts, loops) and
``other`` is what the driver spends outside every stage (grouping, filtering).

The process is pinned to one CPU (``os.sched_setaffinity``, where available).
``cpu_share_of_wall`` (CPU time over wall time of the timed region) says whether
that core was shared: well under 1, other work slowed the run down.

The baseline, measured in the same run on ~2,000 of the same re-identified
resources (each serialized alone), is the off-the-shelf work alone per
resource: ``orjson.loads`` + R4B ``model_validate`` + ``rfc8785.dumps``.

Prints one JSON object on stdout (progress, if any, goes to stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import rfc8785

import healthnft.ledger.merkle as merkle_module
import healthnft.minting.pipeline as pipeline_module
import healthnft.records.fhir as fhir
from healthnft.ingest import assign_patients
from healthnft.network import DEMO_PASSPHRASE, Network
from healthnft.records import Record, exact_json, is_reference_data, parse_resources
from healthnft.sample import write_sample
from healthnft.vault.envelope import BatchKey

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "synthea"
TARGET_RECORDS_PER_S = 1500

#: Stages in pipeline order; each wrapped function below is charged to one of them.
STAGES = (
    "parse",  # JSON bytes -> resource dicts (parse_resources)
    "validate",  # fhir.resources R4B model_validate + required status codes
    "clean",  # whitespace/narrative cleaning, characterize, subject, Record assembly
    "canonicalize",  # RFC 8785
    "dedup",  # HMAC record keys + catalogue lookup of known keys
    "attest",  # issuer signs a VC per record; every VC verified against the chain (gate)
    "commit",  # salts + salted sha256 commitments
    "merkle",  # leaf hashes, tree, proofs (keccak)
    "encrypt",  # AES-GCM seal per record + HPKE wrap of the batch key per reader
    "catalogue",  # SQLite journal: prepare_batch, mark_sent, mark_minted, recovery scan
    "store",  # SQLite blob store put_many
    "sign",  # build + sign the mint transaction (nonce, fees)
    "broadcast",  # send raw transaction, mine, receipt (the wait not hidden by overlap)
    "chain_reads",  # next_token_id / batch_of eth_calls
    "mint_other",  # Minter.mint outside the calls above
    "other",  # driver: filtering reference data, grouping by patient
)


class StageClock:
    """Exclusive-time accumulators keyed by stage, fed by wrappers and blocks."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._children: list[float] = []  # time spent in nested stages, per open frame

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._children.append(0.0)
        t = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t
            nested = self._children.pop()
            self.seconds[name] += dt - nested
            self.calls[name] += 1
            if self._children:
                self._children[-1] += dt

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        children = self._children
        seconds = self.seconds
        calls = self.calls
        perf = time.perf_counter

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            children.append(0.0)
            t = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = perf() - t
                nested = children.pop()
                seconds[name] += dt - nested
                calls[name] += 1
                if children:
                    children[-1] += dt

        return timed


@contextlib.contextmanager
def instrumented(clock: StageClock, minter: Any) -> Iterator[None]:
    """Install the timing wrappers; restore every patched attribute on exit."""
    patches: list[tuple[Any, str, str]] = [
        (fhir, "validate", "validate"),
        (fhir, "prepare", "clean"),
        (fhir, "clean", "clean"),
        (fhir, "characterize", "clean"),
        (fhir, "subject_reference", "clean"),
        (fhir, "canonicalize", "canonicalize"),
        (pipeline_module, "seal", "encrypt"),
        (BatchKey, "wrap_for", "encrypt"),
        (pipeline_module, "commit", "commit"),
        (pipeline_module, "new_salt", "commit"),
        (merkle_module, "leaf_hash", "merkle"),
        (merkle_module, "build", "merkle"),
        (merkle_module, "pack_proof", "merkle"),
        (minter, "mint", "mint_other"),
        (minter, "record_key", "dedup"),
        (minter, "_attest", "attest"),
        (minter.catalog, "known_record_keys", "dedup"),
        (minter.catalog, "prepare_batch", "catalogue"),
        (minter.catalog, "mark_sent", "catalogue"),
        (minter.catalog, "mark_minted", "catalogue"),
        (minter.catalog, "unfinished_batches", "catalogue"),
        (minter.blobs, "put_many", "store"),
        (minter.ledger, "sign", "sign"),
        (minter.ledger, "broadcast", "broadcast"),
        (minter.ledger, "submit", "broadcast"),
        (minter.ledger, "confirm", "broadcast"),
        (minter.ledger, "next_token_id", "chain_reads"),
        (minter.ledger, "batch_of", "chain_reads"),
    ]
    saved: list[tuple[Any, str, bool, Any]] = []
    try:
        for owner, attr, stage in patches:
            own = attr in vars(owner)  # instance/module/class attribute vs inherited method
            original = getattr(owner, attr)
            saved.append((owner, attr, own, vars(owner).get(attr)))
            setattr(owner, attr, clock.wrap(stage, original))
        yield
    finally:
        for owner, attr, own, original in reversed(saved):
            if own:
                setattr(owner, attr, original)
            else:
                delattr(owner, attr)


# -- input ------------------------------------------------------------------


@dataclass
class Template:
    """One Synthea patient bundle: its entries and which of them are patient records."""

    name: str
    entries: list[dict[str, Any]]
    records: int
    patient_ids: list[str]


@dataclass
class BundleInput:
    name: str
    raw: bytes
    patient_ref: str
    records: int


@dataclass
class GeneratedInput:
    bundles: list[BundleInput] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)  # for the baseline


def load_templates(folder: Path) -> list[Template]:
    """Every bundle in ``folder`` that holds exactly one Patient."""
    templates = []
    for path in sorted(folder.glob("*.json")):
        entries = []
        patients = []
        records = 0
        for src in parse_resources(path.read_bytes(), path.name):
            entries.append(src.resource)
            if not is_reference_data(src):
                records += 1
                if src.resource["resourceType"] == "Patient":
                    patients.append(src.resource["id"])
        if len(patients) == 1:
            templates.append(Template(path.name, entries, records, patients))
    return templates


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    """A deep copy of ``value`` with every reference to an old id pointing at its new id."""
    if isinstance(value, dict):
        return {k: _rewrite(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    if isinstance(value, str):
        if value in ids:
            return ids[value]
        if value.startswith("urn:uuid:") and value[9:] in ids:
            return "urn:uuid:" + ids[value[9:]]
        head, sep, tail = value.rpartition("/")
        if sep and tail in ids:
            return f"{head}/{ids[tail]}"
    return value


def reidentify(tpl: Template, limit: int) -> tuple[dict[str, Any], str, int, list[dict[str, Any]]]:
    """A fresh copy of ``tpl`` as a batch Bundle with at most ``limit`` patient records.

    Returns (bundle, new patient reference, records in it, the re-identified records).
    """
    ids: dict[str, str] = {}
    for res in tpl.entries:
        if res["resourceType"] not in fhir.REFERENCE_TYPES and isinstance(res.get("id"), str):
            ids[res["id"]] = str(uuid.uuid4())
    entries = []
    records: list[dict[str, Any]] = []
    for res in tpl.entries:
        if res["resourceType"] in fhir.REFERENCE_TYPES:
            new = copy.deepcopy(res)  # network data: the same in every copy, skipped
        else:
            if len(records) == limit:
                continue
            new = _rewrite(res, ids)
            new["id"] = ids.get(res.get("id"), str(uuid.uuid4()))
            records.append(new)
        entries.append(
            {
                "fullUrl": f"urn:uuid:{new['id']}",
                "resource": new,
                "request": {"method": "POST", "url": new["resourceType"]},
            }
        )
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    return bundle, f"urn:uuid:{ids[tpl.patient_ids[0]]}", len(records), records


def generate(templates: list[Template], n_records: int, n_samples: int) -> GeneratedInput:
    out = GeneratedInput()
    total = 0
    copy_no = 0
    while total < n_records:
        tpl = templates[copy_no % len(templates)]
        bundle, ref, count, records = reidentify(tpl, n_records - total)
        name = f"copy{copy_no:05d}-{tpl.name}"
        # Decimals as the source wrote them (the templates were read with exact decimals).
        out.bundles.append(BundleInput(name, exact_json.dumps(bundle), ref, count))
        if len(out.samples) < n_samples:
            out.samples.extend(records[: n_samples - len(out.samples)])
        total += count
        copy_no += 1
    return out


def plan_wallets(bundles: list[BundleInput], batch_size: int, per_patient: bool) -> list[list[str]]:
    """Patient references per wallet: whole patients, up to ``batch_size`` records each."""
    plan: list[list[str]] = []
    filled = batch_size  # forces a first wallet
    for b in bundles:
        if per_patient or filled + b.records > batch_size:
            plan.append([])
            filled = 0
        plan[-1].append(b.patient_ref)
        filled += b.records
    return plan


# -- the measured pipeline --------------------------------------------------


def run_pipeline(
    bundles: list[BundleInput],
    clock: StageClock,
    minter: Any,
    issuer: Any,
    wallets: list[tuple[Any, list[str]]],
    batch_size: int,
) -> dict[str, int]:
    """parse → prepare → group by patient → mint per wallet (the demo's path)."""
    by_patient: dict[str | None, list[Record]] = {}
    reference = 0
    with clock.stage("other"):
        for b in bundles:
            with clock.stage("parse"):
                sources = parse_resources(b.raw, b.name)
            pending: list[Record] = []
            for src in sources:
                if is_reference_data(src):
                    reference += 1
                    continue
                pending.append(fhir.prepare(src))
            for ref, rec in assign_patients(pending):
                by_patient.setdefault(ref, []).append(rec)
        minted = batches = gas = 0
        for wallet, refs in wallets:
            records = [r for ref in refs for r in by_patient.pop(ref, [])]
            res = minter.mint(issuer, wallet.address, wallet.enc_key, records, batch_size)
            minted += res.minted
            batches += res.batches
            gas += res.gas_used
    unplanned = sum(len(v) for v in by_patient.values())
    return {
        "minted_now": minted,
        "transactions": batches,
        "gas_used": gas,
        "reference_resources_skipped": reference,
        "records_without_wallet": unplanned,
    }


def warm_up(templates: list[Template]) -> None:
    """Build each resource type's model once (fhir.resources builds lazily)."""
    seen: set[str] = set()
    for tpl in templates:
        for res in tpl.entries:
            if res["resourceType"] in seen or res["resourceType"] in fhir.REFERENCE_TYPES:
                continue
            seen.add(res["resourceType"])
            fhir.prepare(fhir.SourceResource(res, "warm-up"))


def baseline(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """orjson parse + R4B model_validate + rfc8785.dumps per resource, off the shelf."""
    from fhir.resources.R4B import get_fhir_model_class

    raws = [exact_json.dumps(s) for s in samples]
    perf = time.perf_counter
    t_parse = t_validate = t_canon = 0.0
    for raw in raws:
        t0 = perf()
        obj = orjson.loads(raw)
        t1 = perf()
        get_fhir_model_class(obj["resourceType"]).model_validate(obj)
        t2 = perf()
        rfc8785.dumps(obj)
        t3 = perf()
        t_parse += t1 - t0
        t_validate += t2 - t1
        t_canon += t3 - t2
    total = t_parse + t_validate + t_canon
    n = len(raws)
    return {
        "records": n,
        "seconds": round(total, 3),
        "records_per_s": round(n / total, 1),
        "us_per_record": {
            "parse": round(1e6 * t_parse / n, 1),
            "validate": round(1e6 * t_validate / n, 1),
            "canonicalize": round(1e6 * t_canon / n, 1),
        },
        "steps": "orjson.loads + fhir.resources R4B model_validate + rfc8785.dumps",
    }


def pin_to_one_core() -> list[int] | None:
    """Pin this process to one CPU (the first it may use); None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return sorted(os.sched_getaffinity(0))


def run(
    n_records: int,
    batch_size: int,
    data: Path,
    per_patient: bool,
    n_baseline: int,
    say: Callable[[str], None],
    custodians: int = 0,
) -> dict[str, Any]:
    pinned = pin_to_one_core()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="healthnft-pipeline-") as tmp:
        templates = load_templates(data) if data.is_dir() else []
        source = str(data)
        if not templates:
            sample = write_sample(Path(tmp) / "sample")
            templates = load_templates(sample)
            source = f"generated sample ({data} has no patient bundles)"
        say(f"templates: {len(templates)} patient bundles from {source}")

        t = time.perf_counter()
        gen = generate(templates, n_records, n_baseline)
        generate_s = time.perf_counter() - t
        say(f"generated {len(gen.bundles)} re-identified bundles in {generate_s:.1f} s")

        t = time.perf_counter()
        net = Network.create(Path(tmp) / "home", DEMO_PASSPHRASE, demo=True)
        try:
            hospital = net.add_participant("hospital", "bench-hospital")
            issuer = net.identity(hospital.address)
            for c in range(custodians):  # each DEK is then split 2-of-N at mint
                net.add_participant("custodian", f"bench-custodian-{c}")
            plan = plan_wallets(gen.bundles, batch_size, per_patient)
            wallets = [
                (net.add_participant("patient", f"bench-wallet-{i}"), refs)
                for i, refs in enumerate(plan)
            ]
            minter = net.minter()
            setup_s = time.perf_counter() - t
            say(f"network ready, {len(wallets)} wallets registered in {setup_s:.1f} s")

            t = time.perf_counter()
            warm_up(templates)
            warmup_s = time.perf_counter() - t

            clock = StageClock()
            load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            with instrumented(clock, minter):
                c0 = time.process_time()
                t0 = time.perf_counter()
                counts = run_pipeline(gen.bundles, clock, minter, issuer, wallets, batch_size)
                seconds = time.perf_counter() - t0
                cpu_s = time.process_time() - c0
            say(f"pipeline: {n_records} records in {seconds:.1f} s")
            catalogue = net.catalog.counts()
        finally:
            net.close()

    base = baseline(gen.samples)
    rate = n_records / seconds
    stages = {s: round(clock.seconds.get(s, 0.0), 3) for s in STAGES}
    unknown = set(clock.seconds) - set(STAGES)
    if unknown:
        raise RuntimeError(f"unlisted stages: {sorted(unknown)}")
    return {
        "records": n_records,
        "minted": catalogue["records"],
        "seconds": round(seconds, 3),
        "records_per_s": round(rate, 1),
        "custodians": custodians,
        "stages_s": stages,
        "stages_pct": {s: round(100 * clock.seconds.get(s, 0.0) / seconds, 1) for s in STAGES},
        "stage_calls": {s: clock.calls.get(s, 0) for s in STAGES},
        "target_records_per_s": TARGET_RECORDS_PER_S,
        "target_met": rate >= TARGET_RECORDS_PER_S,
        "baseline": base,
        "ratio_to_baseline": round(rate / base["records_per_s"], 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "batch_size": batch_size,
        "wallets": len(wallets),
        "wallet_mode": "per-patient" if per_patient else "per-batch",
        "bundles": len(gen.bundles),
        "input_bytes": sum(len(b.raw) for b in gen.bundles),
        **counts,
        "batches_minted": catalogue["batches"],
        "unfinished_batches": catalogue["unfinished"],
        "untimed_s": {
            "generate_input": round(generate_s, 2),
            "network_and_wallets": round(setup_s, 2),
            "warm_up": round(warmup_s, 2),
        },
        "data": source,
        "single_core": pinned is not None and len(pinned) == 1,
        # CPU time of this process over the timed region: a share well under 1 means
        # the pinned core was shared with other work and the wall-clock rate is low.
        "cpu_s": round(cpu_s, 3),
        "cpu_share_of_wall": round(cpu_s / seconds, 3),
        "load_avg_1m_before": None if load_before is None else round(load_before, 2),
        "cpu_affinity": pinned,
        "cpus_on_machine": os.cpu_count(),
        "python": platform.python_version(),
        "runtime_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Measure end-to-end records/s of the pipeline (parse, validate, canonicalize, "
            "commit, encrypt, store, mint on the embedded chain) on re-identified copies "
            "of Synthea patients, on one core; prints one JSON object."
        )
    )
    parser.add_argument(
        "--records",
        type=int,
        default=20_000,
        metavar="N",
        help="patient records to push through the pipeline (default: 20000)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="records per mint transaction (default: 1000)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        metavar="FOLDER",
        help=(
            "folder of Synthea patient bundles to copy (default: ../shared/data/synthea "
            "next to the repo; the package's generated sample when absent)"
        ),
    )
    parser.add_argument(
        "--wallet-per-patient",
        action="store_true",
        help=(
            "one wallet per re-identified patient (one transaction per ~100 records) "
            "instead of one wallet per batch-size records of whole patients"
        ),
    )
    parser.add_argument(
        "--baseline-records",
        type=int,
        default=2000,
        metavar="N",
        help="resources in the off-the-shelf baseline (default: 2000)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when the target is missed or a record was not minted",
    )
    parser.add_argument(
        "--custodians",
        type=int,
        default=0,
        metavar="N",
        help="register N key custodians first, so every DEK is split 2-of-N (default: 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.records < 1 or args.batch_size < 1 or args.baseline_records < 1:
        parser.error("--records, --batch-size and --baseline-records must be positive")

    def say(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    result = run(
        args.records,
        args.batch_size,
        args.data,
        args.wallet_per_patient,
        args.baseline_records,
        say,
        args.custodians,
    )
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    if args.check and not (result["target_met"] and result["minted"] == result["records"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
