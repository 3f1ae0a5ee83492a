"""A throwaway PostgreSQL cluster for the tests, from Debian's packages (`apt-get install postgresql`).

It listens only on a unix socket inside its own temporary folder, with `trust` auth (nobody
else can reach that folder), and is stopped and removed at the end of the session. PostgreSQL
refuses to run as root, so under root the cluster belongs to the `postgres` user.
"""
from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from benchmarks.web_load import free_port


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's programs, or None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int
    user: str | None  # the OS user the server runs as when we are root
    _names = itertools.count()

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale", "C.UTF-8")
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / "log"), "-w", "-o",
                  f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -p {self.port} "
                  "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def new_database(self) -> str:
        """A fresh, empty database's URL: each test gets its own."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def start_cluster() -> Cluster:
    """Start a cluster; raises RuntimeError saying why when PostgreSQL or psycopg is missing."""
    import importlib.util

    found = bin_dir()
    if found is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    if importlib.util.find_spec("psycopg") is None:
        raise RuntimeError('the psycopg driver is not installed (pip install "muses[postgres]")')
    root = Path(tempfile.mkdtemp(prefix="muses-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        owner = pwd.getpwnam(user)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    # The port only names the socket file; nothing listens on TCP.
    cluster = Cluster(bin=found, root=root, port=free_port(), user=user)
    (root / "socket").mkdir()
    if user:
        os.chown(root / "socket", owner.pw_uid, owner.pw_gid)
    try:
        cluster.start()
    except subprocess.CalledProcessError as exc:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {exc.stderr or exc.stdout}{log}") from exc
    return cluster
