"""A throwaway pgbouncer in transaction pooling mode in front of the tests' PostgreSQL.

Supabase's transaction pooler (port 6543) hands each transaction whatever server connection is
free; Debian's ``pgbouncer`` in ``pool_mode = transaction`` does the same, with a pool of two
server connections so that clients really share them. pgbouncer refuses to run as root, so as
root it runs as the ``postgres`` user (through ``runuser``) in a folder that user owns, as
tests/pgcluster.py runs PostgreSQL.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from tests.pgcluster import _free_port

#: Where Debian puts it (/usr/sbin is not on every user's PATH).
_CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def find_pgbouncer() -> Path | None:
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    return next((Path(path) for path in _CANDIDATES if Path(path).exists()), None)


class PgBouncer:
    """pgbouncer on a free port of 127.0.0.1 forwarding every database to ``server_url``'s server,
    for ``server_url``'s user, let in without a password (``auth_type = trust``); pgbouncer logs
    into the server with the URL's password, if any. ``folder`` is a new folder of its own (as
    root, it is given to the postgres user)."""

    def __init__(self, binary: Path, folder: Path, server_url: str) -> None:
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        server = make_url(server_url)
        self._server = (server.host or "127.0.0.1", server.port or 5432)
        self.user = server.username or "postgres"
        self._password = server.password or ""
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(folder, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]

    def version(self) -> tuple[int, int]:
        out = subprocess.run(
            [str(self.binary), "--version"], capture_output=True, text=True, check=True
        ).stdout
        found = re.search(r"PgBouncer (\d+)\.(\d+)", out)
        return (int(found.group(1)), int(found.group(2))) if found else (0, 0)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _write_config(self) -> Path:
        host, port = self._server
        password = str(self._password).replace('"', '""')
        (self.folder / "userlist.txt").write_text(f'"{self.user}" "{password}"\n', encoding="utf-8")
        # pgbouncer 1.21+ can keep prepared statements apart per client (1.22+ does by default):
        # off, as in the poolers testledger must work with (older pgbouncer, Supavisor).
        prepared = "max_prepared_statements = 0\n" if self.version() >= (1, 21) else ""
        config = self.folder / "pgbouncer.ini"
        config.write_text(
            f"""[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / "userlist.txt"}
pool_mode = transaction
default_pool_size = 2
max_client_conn = 200
logfile = {self.folder / "pgbouncer.log"}
pidfile = {self.folder / "pgbouncer.pid"}
; some drivers send extra_float_digits; anything else (options above all) is refused, as by poolers
ignore_startup_parameters = extra_float_digits
{prepared}""",
            encoding="utf-8",
        )
        if self._prefix:
            for path in self.folder.iterdir():
                os.chown(path, pwd.getpwnam("postgres").pw_uid, -1)
        return config

    def start(self, timeout: float = 10.0) -> None:
        config = self._write_config()
        subprocess.run(
            [*self._prefix, str(self.binary), "-d", str(config)],
            check=True,
            capture_output=True,
            cwd=self.folder,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer did not start: {self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text(encoding="utf-8", errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        pidfile = self.folder / "pgbouncer.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
