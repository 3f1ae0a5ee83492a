"""A throwaway PostgreSQL cluster, from Debian's packages (`apt-get install postgresql`), for the
tests and the scale bench.

It listens only on a unix socket inside its own temporary folder, with `trust` auth (nobody
else can reach that folder), and is stopped and removed at the end (``with start_cluster() as
cluster:``, or ``cluster.stop()``). PostgreSQL refuses to run as root, so under root the cluster
belongs to the `postgres` user.
"""
from __future__ import annotations

import glob
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from muses.testing.net import free_port


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
    port: int  # only names the socket file; nothing listens on TCP
    user: str | None  # the OS user the server runs as when we are root
    _names: itertools.count = field(default_factory=itertools.count)

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

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        """A new, empty database called ``name`` (letters, digits, underscores); its URL."""
        import psycopg

        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and underscores")
        with psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def new_database(self) -> str:
        """A fresh, empty database's URL: each test gets its own."""
        return self.create_database(f"t{os.getpid()}_{next(self._names)}")


def missing() -> str | None:
    """Why no cluster can start here (PostgreSQL or psycopg not installed), or None."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    if importlib.util.find_spec("psycopg") is None:
        return 'the psycopg driver is not installed (pip install "muses[postgres]")'
    return None


def start_cluster() -> Cluster:
    """Start a cluster; raises RuntimeError saying why when PostgreSQL or psycopg is missing."""
    why = missing()
    if why:
        raise RuntimeError(why)
    root = Path(tempfile.mkdtemp(prefix="muses-pg-"))
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        owner = pwd.getpwnam(user)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = Cluster(bin=bin_dir(), root=root, port=free_port(), user=user)
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
