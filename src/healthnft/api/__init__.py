"""The network service and web health wallet (FastAPI), over one home.

``healthnft serve`` runs :func:`create_app` with uvicorn. Modules:

- :mod:`~healthnft.api.app`       routes: sign-in, records, consent, minting, the web page
- :mod:`~healthnft.api.siwe`      Sign-In with Ethereum (EIP-4361) messages and signatures
- :mod:`~healthnft.api.sessions`  one-time nonces and expiring sessions, in memory
- :mod:`~healthnft.api.describe`  plain-language summaries and lab tables of FHIR records
- ``static/``                     the single-page web wallet (HTML, CSS, JS; ethers.js vendored)

The API sits above :mod:`healthnft.operations`; nothing below imports it.
"""

from healthnft.api.app import create_app

__all__ = ["create_app"]
