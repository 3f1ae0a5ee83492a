"""Loopback servers for tests and benchmarks: a free port, and `muses serve` in its own process."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

STARTUP_S = 300  # a loaded machine takes minutes to start worker processes (each imports the app)
SRC = Path(__file__).resolve().parents[2]  # the folder muses is imported from: the server imports the same


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`muses serve` in its own process group on a free loopback port, stopped on exit as Ctrl-C
    would. What it prints goes to a log file, never to a pipe nobody reads while it runs (a full
    pipe stops the server); :attr:`output` has it once stopped."""

    def __init__(self, project_root: Path, *, workers: int | None = None, store_url: str | None = None,
                 extra: list[str] | None = None, log_dir: Path | None = None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "muses", "serve", "--project", str(project_root), "--port", str(self.port),
                     *(["--workers", str(workers)] if workers else []), *(extra or [])]
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        if store_url:
            self.env["MUSES_STORE_URL"] = store_url
        self.log = (log_dir or Path(tempfile.mkdtemp(prefix="muses-serve-"))) / f"serve-{self.port}.log"
        self.output = ""

    def __enter__(self) -> Server:
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         start_new_session=True)
        try:
            self._wait_until_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"muses serve stopped: {self.log.read_text(errors='replace')[-2000:]}")
            try:  # refused until it listens
                with urllib.request.urlopen(f"{self.base}/api/items?per_page=1", timeout=60):
                    return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise RuntimeError(f"muses serve did not answer within {STARTUP_S} s")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.output = self.log.read_text(errors="replace")
