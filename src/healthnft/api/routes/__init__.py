"""One router per resource: sign-in, records, consent, minting, credentials."""
