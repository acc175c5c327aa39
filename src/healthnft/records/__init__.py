"""records: turn FHIR input into validated, canonical records and their commitments.

The lowest layer: it knows nothing of keys, vaults or chains.
"""

from healthnft.records.commitment import commit, matches, new_salt
from healthnft.records.fhir import (
    Record,
    SourceResource,
    is_reference_data,
    iter_json_files,
    parse_resources,
    prepare,
    read_resources,
)

__all__ = [
    "Record",
    "SourceResource",
    "commit",
    "is_reference_data",
    "iter_json_files",
    "matches",
    "new_salt",
    "parse_resources",
    "prepare",
    "read_resources",
]
