"""DICOM input under mutation (issue 12, standing defences): a changed, cut or garbage
file is characterized or refused with one line naming its position, never a crash and
never a quoted value. Hypothesis, bounded and derandomized for CI."""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from healthnft.errors import HealthNFTError
from healthnft.records.dicom import read_instance

FUZZ = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])  # fmt: skip
SOURCES = ("CT_small.dcm", "MR_small_bigendian.dcm", "examples_ybr_color.dcm")
LABEL = "input 3 of 7"


def _source(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def _read(tmp_path_factory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("dicom") / "x.dcm"
    path.write_bytes(raw)
    try:
        instance = read_instance(path, LABEL)
    except HealthNFTError as exc:
        message = str(exc)
        assert message.startswith(LABEL + ":") and "\n" not in message, message
    else:
        assert instance.size == len(raw)


@FUZZ
@given(data=st.data())
def test_a_mutated_real_file_is_read_or_refused_clearly(tmp_path_factory, data) -> None:
    raw = bytearray(_source(data.draw(st.sampled_from(SOURCES), label="source")))
    for _ in range(data.draw(st.integers(1, 8), label="edits")):
        if len(raw) < 2:
            break
        at = data.draw(st.integers(0, len(raw) - 1), label="at")
        how = data.draw(st.sampled_from(["flip", "delete", "insert", "cut"]), label="how")
        byte = data.draw(st.integers(0, 255), label="byte")
        if how == "flip":
            raw[at] ^= byte or 1
        elif how == "delete":
            del raw[at]
        elif how == "insert":
            raw.insert(at, byte)
        else:
            del raw[max(at, 1):]
    _read(tmp_path_factory, bytes(raw))


@FUZZ
@given(body=st.binary(max_size=600), preamble=st.booleans())
def test_garbage_with_or_without_a_dicom_preamble_is_refused_clearly(tmp_path_factory,
                                                                     body: bytes,
                                                                     preamble: bool) -> None:
    _read(tmp_path_factory, (b"\0" * 128 + b"DICM" if preamble else b"") + body)


def test_pydicom_logs_nothing_while_a_file_is_read(tmp_path: Path, caplog) -> None:
    """pydicom's log records can quote element values: none escape a read."""
    raw = bytearray(_source("CT_small.dcm"))
    raw[0x300:0x310] = b"\xff" * 16  # enough damage for pydicom to complain
    path = tmp_path / "x.dcm"
    path.write_bytes(bytes(raw))
    with caplog.at_level("DEBUG"), contextlib.suppress(HealthNFTError):
        read_instance(path, LABEL)
    assert [r for r in caplog.records if r.name.startswith("pydicom")] == []
