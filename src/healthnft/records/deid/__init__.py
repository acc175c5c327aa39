"""records.deid: de-identified copies of records, for research and other secondary use.

- :mod:`~healthnft.records.deid.fhir` — HIPAA Safe Harbor for FHIR R4 resources and bundles;
- :mod:`~healthnft.records.deid.notes` — identifiers scrubbed from note text;
- :mod:`~healthnft.records.deid.dicom` — DICOM PS3.15 Annex E Basic Profile.

Like the rest of ``records`` it knows nothing of keys, vaults or chains: it turns
a record into a new record, never changing the one it was given. Each module's
docstring says what it removes and, as plainly, what it cannot.
"""

from healthnft.errors import InvalidRecord


class DeidentificationRefused(InvalidRecord):
    """A record that cannot be de-identified safely (e.g. text burned into an image's pixels).

    A subclass of :class:`~healthnft.errors.InvalidRecord`, so callers that catch
    healthnft's errors report it as one line like any other refusal.
    """


__all__ = ["DeidentificationRefused"]
