"""testledger's pytest plugin (being written): off unless ``--ledger`` is given."""

from __future__ import annotations
