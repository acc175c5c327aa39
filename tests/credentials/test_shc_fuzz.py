"""The SMART Health Card decoders under arbitrary and mutated input (issue 12, standing
defences): every input gets a verdict or one of the project's errors, never a crash, and
no mutation of a genuine card verifies. Hypothesis, bounded and derandomized for CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthnft.credentials import TrustStore, decode_qr, read_card_inputs, verify_card
from healthnft.errors import HealthNFTError

SHC = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "shc"
EXAMPLE_ISS = "https://spec.smarthealth.cards/examples/issuer"
needs_examples = pytest.mark.skipif(not SHC.is_dir(), reason="../shared/data/shc not present")
FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@pytest.fixture(scope="module")
def trust() -> TrustStore:
    return TrustStore.from_pairs([f"{EXAMPLE_ISS}={SHC / 'issuer'}"])


@pytest.fixture(scope="module")
def genuine() -> str:
    return (SHC / "example-00-d-jws.txt").read_text().strip()


@needs_examples
def test_the_genuine_card_verifies(trust, genuine) -> None:
    assert verify_card(genuine, trust, now=1_700_000_000).valid


@needs_examples
@FUZZ
@given(text=st.one_of(st.text(max_size=400), st.text(alphabet=B64URL + ".", max_size=600)))
def test_any_text_gets_a_verdict_not_a_crash(trust, text: str) -> None:
    verdict = verify_card(text, trust, now=1_700_000_000)
    assert verdict.valid is False and verdict.reason


@needs_examples
@FUZZ
@given(data=st.data())
def test_no_mutation_of_a_genuine_card_verifies(trust, genuine, data) -> None:
    position = data.draw(st.integers(0, len(genuine) - 1), label="position")
    how = data.draw(st.sampled_from(["replace", "delete", "insert", "truncate"]), label="how")
    char = data.draw(st.sampled_from(B64URL + ".="), label="char")
    if how == "replace":
        mutated = genuine[:position] + char + genuine[position + 1:]
    elif how == "delete":
        mutated = genuine[:position] + genuine[position + 1:]
    elif how == "insert":
        mutated = genuine[:position] + char + genuine[position:]
    else:
        mutated = genuine[:position]
    if mutated == genuine:
        return
    verdict = verify_card(mutated, trust, now=1_700_000_000)
    assert verdict.valid is False, (how, position, char)


@FUZZ
@given(contents=st.lists(st.one_of(
    st.text(max_size=60),
    st.builds(lambda i, n, d: f"shc:/{i}/{n}/{d}", st.integers(-2, 5), st.integers(-2, 5),
              st.text(alphabet="0123456789", max_size=40)),
    st.builds(lambda d: f"shc:/{d}", st.text(alphabet="0123456789", max_size=80)),
), max_size=5))  # fmt: skip
def test_any_qr_content_decodes_or_is_refused_clearly(contents: list[str]) -> None:
    try:
        jws = decode_qr(contents)
    except HealthNFTError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(jws, str)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                     st.sampled_from([b'{"verifiableCredential": 5}', b'{"verifiableCredential"'
                                      b': ["a.b.c", 7]}', b"shc:/1/2/00", b"\xff\xfe{}"])))
def test_any_file_is_read_or_refused_clearly(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("card") / "card.smart-health-card"
    path.write_bytes(raw)
    try:
        cards = read_card_inputs([path])
    except HealthNFTError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert all(isinstance(c, str) for c in cards)
