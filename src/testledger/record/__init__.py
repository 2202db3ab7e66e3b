"""Recording runs: the runner API, the pytest plugin and its writer process, spool and sync."""
