"""The network service and web health wallet (FastAPI), over one home.

``healthnft serve`` runs :func:`create_app` with uvicorn. Modules:

- :mod:`~healthnft.api.app`       the app factory: errors, headers, routers, the web page
- :mod:`~healthnft.api.routes`    one router per resource (auth, records, consent, minting, ...)
- :mod:`~healthnft.api.deps`      the service handle and the caller's session
- :mod:`~healthnft.api.problems`  errors as RFC 9457 problem documents
- :mod:`~healthnft.api.siwe`      Sign-In with Ethereum (EIP-4361) messages and signatures
- :mod:`~healthnft.api.sessions`  one-time nonces and expiring sessions, in memory
- :mod:`~healthnft.services.describe`  plain-language summaries and lab tables of FHIR records
- ``static/``                     the single-page web wallet (HTML, CSS, JS; ethers.js vendored)

Routes are thin over :mod:`healthnft.services`; nothing below imports the API.
"""

from healthnft.api.app import create_app

__all__ = ["create_app"]
