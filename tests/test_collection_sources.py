"""Where a photo may be read from, and how much of it (muses.collection.sources)."""
import contextlib
import functools
import http.server
import os
import signal
import threading
import time

import pytest

from muses.collection.image_checks import ImageProblem
from muses.collection.sources import ReadLimits, Refused, Roots, admit, fetch_url, read_file, read_original


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: what these tests guard against is a read that never returns."""
    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def export_dir(tmp_path):
    folder = tmp_path / "export"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "a.jpg").write_bytes(b"jpeg")
    return folder


def test_relative_paths_inside_the_export_folder_are_admitted_as_real_paths(export_dir, tmp_path):
    roots = Roots.of([export_dir])
    assert admit("photos/a.jpg", base_dir=export_dir, roots=roots) == str((export_dir / "photos" / "a.jpg").resolve())
    assert admit("photos/../photos/./a.jpg", base_dir=export_dir, roots=roots).endswith("photos/a.jpg")
    (export_dir / "alias.jpg").symlink_to(export_dir / "photos" / "a.jpg")  # a link staying inside
    assert admit("alias.jpg", base_dir=export_dir, roots=roots) == str((export_dir / "photos" / "a.jpg").resolve())
    assert admit("https://images.example.org/1.jpg", base_dir=export_dir, roots=roots) == "https://images.example.org/1.jpg"


@pytest.mark.parametrize("ref, reason", [
    ("/etc/passwd", "an absolute path outside the allowed folders"),
    ("../../../../etc/passwd", "'..' leads outside the allowed folders"),
    ("photos/../../secret.jpg", "'..' leads outside"),
    ("~/.bashrc", "home-folder paths (~) are not read"),
    ("file:///etc/hostname", "file: URLs are not read"),
    ("ftp://example.org/a.jpg", "only http and https URLs"),
    ("gopher://example.org/a.jpg", "only http and https URLs"),
    ("http:///a.jpg", "the URL has no host name"),
    ("photos/a.jpg\0.png", "NUL character"),
])
def test_references_leaving_the_allowed_folders_are_refused(export_dir, ref, reason):
    with pytest.raises(Refused, match="refused") as exc:
        admit(ref, base_dir=export_dir, roots=Roots.of([export_dir]))
    assert reason in str(exc.value) and "--image-root" in str(exc.value)


def test_a_symlink_leading_out_is_refused_and_an_extra_root_admits_absolute_paths(export_dir, tmp_path):
    (export_dir / "shadow.jpg").symlink_to("/etc/passwd")
    (export_dir / "etc").symlink_to("/etc")  # a folder on the way that leads out
    roots = Roots.of([export_dir])
    for ref in ("shadow.jpg", "etc/passwd", "photos/../etc/passwd"):
        with pytest.raises(Refused, match="a symbolic link leading outside"):
            admit(ref, base_dir=export_dir, roots=roots)
    elsewhere = tmp_path / "nas"
    elsewhere.mkdir()
    (elsewhere / "b.jpg").write_bytes(b"jpeg")
    roots = Roots.of([export_dir, elsewhere])
    assert admit(str(elsewhere / "b.jpg"), base_dir=export_dir, roots=roots) == str((elsewhere / "b.jpg").resolve())
    with pytest.raises(Refused, match="does not exist"):
        Roots.of([tmp_path / "no-such-folder"])


def test_a_root_is_not_a_prefix_match(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos-private").mkdir()
    with pytest.raises(Refused):
        admit("../photos-private/x.jpg", base_dir=tmp_path / "photos", roots=Roots.of([tmp_path / "photos"]))


# -- reading files ------------------------------------------------------------------------------
def test_a_fifo_is_refused_at_once_instead_of_hanging(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with deadline(10), pytest.raises(ImageProblem, match="not-a-file: .*a named pipe"):
        read_file(str(fifo), ReadLimits())


@pytest.mark.parametrize("path, kind", [("/dev/zero", "a device"), ("/dev", "a folder")])
def test_devices_and_folders_are_refused(path, kind):
    with deadline(10), pytest.raises(ImageProblem, match=f"not-a-file: {path} is {kind}"):
        read_file(path, ReadLimits())


def test_a_file_over_the_byte_limit_is_a_problem_not_a_memory_error(tmp_path):
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 5000)
    with pytest.raises(ImageProblem, match=r"too-large: .* is over 0.004 MB \(\[images\] max_original_mb"):
        read_file(str(big), ReadLimits(max_bytes=4000))
    assert read_file(str(big), ReadLimits(max_bytes=5000)) == b"\xff" * 5000


def test_a_link_swapped_in_after_the_import_is_refused(export_dir, tmp_path):
    photo = export_dir / "photos" / "a.jpg"
    stored = admit("photos/a.jpg", base_dir=export_dir, roots=Roots.of([export_dir]))
    photo.unlink()
    photo.symlink_to("/etc/passwd")
    with pytest.raises(ImageProblem, match="refused: .* is now a symbolic link"):
        read_original(stored, ReadLimits())
    photo.unlink()
    (export_dir / "photos").rename(export_dir / "real")  # a folder on the way swapped for a link
    (export_dir / "real" / "a.jpg").write_bytes(b"jpeg")
    (export_dir / "photos").symlink_to(export_dir / "real")
    with pytest.raises(ImageProblem, match="refused: .* now leads through a symbolic link"):
        read_original(stored, ReadLimits())


# -- fetching URLs --------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        routes = {"/photo.jpg": self._photo, "/chunked": self._chunked, "/big": self._big,
                  "/to-ftp": functools.partial(self._redirect, "ftp://example.org/a.jpg"),
                  "/to-photo": functools.partial(self._redirect, "/photo.jpg"), "/stall": self._stall}
        routes[self.path]()

    def _photo(self):
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"jpeg")

    def _big(self):
        self.send_response(200)
        self.send_header("Content-Length", str(10**9))
        self.end_headers()

    def _chunked(self):  # no length announced: the limit must be counted while reading
        self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(100):
                self.wfile.write(b"400\r\n" + b"\0" * 1024 + b"\r\n")

    def _redirect(self, target):
        self.send_response(302)
        self.send_header("Location", target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stall(self):
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"x")
        self.wfile.flush()
        time.sleep(5)


@pytest.fixture
def site():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_loopback_is_refused_unless_private_addresses_are_allowed(site):
    with pytest.raises(ImageProblem, match="refused: 127.0.0.1 is at 127.0.0.1, a loopback address; pass --allow-private-urls"):
        fetch_url(f"{site}/photo.jpg", ReadLimits())
    assert fetch_url(f"{site}/photo.jpg", ReadLimits(allow_private_urls=True)) == b"jpeg"
    assert fetch_url(f"{site}/to-photo", ReadLimits(allow_private_urls=True)) == b"jpeg"


@pytest.mark.parametrize("name", ["localhost", "0.0.0.0", "[::1]", "169.254.169.254", "10.0.0.1", "[::ffff:127.0.0.1]"])
def test_non_public_hosts_are_refused_before_connecting(name):
    with deadline(10), pytest.raises(ImageProblem, match="refused: .* address; pass --allow-private-urls"):
        fetch_url(f"http://{name}:9/a.jpg", ReadLimits(timeout_s=2))


def test_bodies_over_the_limit_are_stopped_announced_or_not(site):
    limits = ReadLimits(max_bytes=10_000, allow_private_urls=True)
    with deadline(20):
        with pytest.raises(ImageProblem, match="too-large: .*/big is over 0.01 MB"):
            fetch_url(f"{site}/big", limits)
        with pytest.raises(ImageProblem, match="too-large: .*/chunked is over 0.01 MB"):
            fetch_url(f"{site}/chunked", limits)


def test_redirects_are_checked_again(site):
    with pytest.raises(ImageProblem, match="refused: .* redirects to 'ftp://example.org/a.jpg'"):
        fetch_url(f"{site}/to-ftp", ReadLimits(allow_private_urls=True))


def test_a_stalled_server_is_given_up_on(site):
    start = time.monotonic()
    with deadline(20), pytest.raises(ImageProblem, match="download-failed|too-slow"):
        fetch_url(f"{site}/stall", ReadLimits(timeout_s=1, allow_private_urls=True))
    assert time.monotonic() - start < 4
