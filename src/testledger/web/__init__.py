"""testledger's web app and HTTP API (``testledger serve``): FastAPI pages and JSON endpoints,
each a call into :mod:`testledger.api`; no SQL here."""
