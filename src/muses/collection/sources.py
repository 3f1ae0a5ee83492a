"""Where a photo may be read from, and how much of it.

A catalog file is not trusted: its image references could name any file on the server
(``/etc/shadow``, ``../../``, a symbolic link, ``~/.bashrc``) or any address on the network.
So at import a reference is admitted only inside the allowed folders (the export file's folder
and the ones the user names), and stored as its real path, every symbolic link resolved. When
the photo is read, the file opened must still be exactly that path (a link swapped in after the
import is refused), a regular file (never a FIFO, a device or a folder), and no larger or
slower than the limits. URLs are http or https only, to public addresses unless private ones
are allowed explicitly, checked again on every redirect and at connect time.
"""
from __future__ import annotations

import errno
import http.client
import ipaddress
import os
import re
import socket
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from muses.collection.image_checks import ImageProblem
from muses.errors import MusesError

URL_SCHEMES = ("http://", "https://")
CHUNK = 1 << 20


class Refused(MusesError):
    """An image reference that may not be read; the message says why and what to do."""


def is_url(ref: str) -> bool:
    return ref.lower().startswith(URL_SCHEMES)


# -- admitting a reference at import ----------------------------------------------------------
@dataclass(frozen=True)
class Roots:
    """The folders image references may point into, as real paths."""

    folders: tuple[str, ...]
    _real_folders: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike]) -> "Roots":
        real = []
        for folder in folders:
            path = Path(folder).expanduser()
            if not path.is_dir():
                raise Refused(f"image folder {str(folder)!r} does not exist or is not a folder")
            real.append(os.path.realpath(path))
        return cls(tuple(dict.fromkeys(real)))

    def contain(self, path: str) -> bool:
        return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in self.folders)

    def __str__(self) -> str:
        return ", ".join(self.folders)

    def realpath(self, path: str) -> str:
        """``os.path.realpath``, folders' real paths remembered: an import names thousands of
        photos in a few folders, and resolving each folder again costs a system call per part."""
        folder, name = os.path.split(path)
        if folder not in self._real_folders:
            self._real_folders[folder] = os.path.realpath(folder)
        joined = os.path.join(self._real_folders[folder], name)
        return os.path.realpath(joined) if os.path.islink(joined) else joined


def _refuse(ref: str, reason: str, roots: Roots) -> Refused:
    return Refused(f"image {ref!r} refused: {reason} (allowed folders: {roots}; "
                   "add one with --image-root DIR or [images] roots in muses.toml)")


def admit(ref: str, *, base_dir: str | os.PathLike, roots: Roots) -> str:
    """The stored form of an image reference: an http(s) URL, or a real path inside ``roots``.

    Relative paths are taken from ``base_dir`` (the export file's folder). Raises
    :class:`Refused` for anything else.
    """
    if is_url(ref):
        if not urllib.parse.urlsplit(ref).hostname:
            raise _refuse(ref, "the URL has no host name", roots)
        return ref
    if "\0" in ref:
        raise _refuse(ref, "the path contains a NUL character", roots)
    if ref.lower().startswith("file:"):
        raise _refuse(ref, "file: URLs are not read; give a path relative to the export file", roots)
    if "://" in ref:
        raise _refuse(ref, "only http and https URLs are fetched", roots)
    if ref.startswith("~"):
        raise _refuse(ref, "home-folder paths (~) are not read; give a path relative to the export file", roots)
    path = os.path.normpath(os.path.join(base_dir, ref))  # join keeps an absolute ref
    if not roots.contain(path):
        why = "an absolute path outside the allowed folders" if os.path.isabs(ref) else "'..' leads outside the allowed folders"
        raise _refuse(ref, why, roots)
    real = roots.realpath(path)
    if not roots.contain(real):
        raise _refuse(ref, "a symbolic link leading outside the allowed folders", roots)
    return real


# -- reading a photo ------------------------------------------------------------------------
IIIF_SIDE = 1200  # pixels: a IIIF photo is asked for at most this size, ample for any working copy


@dataclass(frozen=True)
class ReadLimits:
    """How much of one original may be read, and for how long; where URLs have local copies."""

    max_bytes: int = 100_000_000
    timeout_s: float = 60.0
    allow_private_urls: bool = False
    url_map: tuple[tuple[str, str], ...] = ()  # (URL prefix, real path of a local folder): see parse_url_map
    iiif_side: int = IIIF_SIDE


def read_original(original: str, limits: ReadLimits) -> bytes:
    """The bytes of a stored image reference; every failure is an :class:`ImageProblem`.
    A URL under a mapped prefix is read from the local folder instead; a IIIF Image API URL is
    asked for at ``limits.iiif_side`` pixels, not at the size of the original."""
    if not is_url(original):
        return read_file(original, limits)
    local = mapped_path(original, limits.url_map)
    return read_file(local, limits) if local is not None else fetch_url(iiif_sized(original, limits.iiif_side), limits)


# -- URLs with a local copy, and IIIF services ---------------------------------------------------
class UrlMapError(MusesError):
    """An --image-url-map entry (or [images] url_map) that cannot be used."""


def parse_url_map(entries: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``PREFIX=FOLDER`` entries as (prefix, the folder's real path): photo URLs under PREFIX are
    read from FOLDER (a museum's web server usually serves a share the museum also has locally)."""
    pairs = []
    for entry in entries:
        prefix, sep, folder = entry.partition("=")
        while sep and not is_url(prefix) and "=" in folder:  # an = inside the URL's query
            more, sep, folder = folder.partition("=")
            prefix = f"{prefix}={more}"
        if not sep or not is_url(prefix.strip()) or not folder.strip():
            raise UrlMapError(f"bad image URL map {entry!r}: write URL_PREFIX=FOLDER, e.g. "
                              "https://images.museum.org/photos/=/mnt/share/photos")
        path = Path(folder.strip()).expanduser()
        if not path.is_dir():
            raise UrlMapError(f"the folder {folder.strip()!r} of the image URL map {entry!r} does not exist or is "
                              "not a folder; give the folder that holds the same photos as the URLs")
        pairs.append((prefix.strip(), os.path.realpath(path)))
    return tuple(pairs)


def mapped_path(url: str, url_map: Iterable[tuple[str, str]]) -> str | None:
    """The local file for ``url`` under the longest matching prefix, checked like an imported path
    (never outside the folder); None when no prefix matches. A path that would leave the folder
    raises :class:`ImageProblem` ("refused")."""
    matches = [(prefix, folder) for prefix, folder in url_map if url.startswith(prefix)]
    if not matches:
        return None
    prefix, folder = max(matches, key=lambda pair: len(pair[0]))
    rest = urllib.parse.unquote(urllib.parse.urlsplit(url[len(prefix):]).path).lstrip("/")
    try:
        return admit(rest, base_dir=folder, roots=Roots((folder,)))
    except Refused as exc:
        raise ImageProblem("refused", f"{url} maps to a path outside {folder}: {exc}") from exc


# A IIIF Image API request: {base}/{region}/{size}/{rotation}/{quality}.{format}
_IIIF = re.compile(r"^(?P<base>.+)/(?P<region>full|square|\d+,\d+,\d+,\d+|pct:[\d.,]+)/(?P<size>[^/]+)/"
                   r"(?P<rotation>!?\d+(?:\.\d+)?)/(?P<quality>default|color|gray|grey|bitonal|native)"
                   r"\.(?P<format>jpg|jpeg|png|webp|tif|tiff|gif)$", re.I)


def iiif_sized(url: str, side: int) -> str:
    """A IIIF Image API URL asking for the whole image at most ``side`` pixels a side (an
    ``info.json`` service URL too); any other URL as it is."""
    path, query = url.partition("?")[0], url.partition("?")[2]
    if path.endswith("/info.json"):
        return f"{path[: -len('/info.json')]}/full/!{side},{side}/0/default.jpg"
    if (match := _IIIF.match(path)) is None or query:
        return url
    return f"{match['base']}/{match['region']}/!{side},{side}/{match['rotation']}/{match['quality']}.{match['format']}"


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def url_root(url: str) -> str:
    """The scheme and server of a URL, as a prefix: "https://images.museum.org/"."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def _describe_mode(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISCHR: "a device",
             stat.S_ISBLK: "a device", stat.S_ISSOCK: "a socket"}
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _opened_path(fd: int, path: str) -> str:
    """Where the open file really is (Linux tells exactly; elsewhere the path's real path)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def _open(path: str) -> int:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: a link swapped in is refused.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError as exc:
        raise ImageProblem("missing", f"no file at {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageProblem("refused", f"{path} is now a symbolic link (it changed after the import); "
                                          "import the catalog again to have it checked") from exc
        raise ImageProblem("unreadable", f"{path}: {exc.strerror or exc}") from exc


def read_file(path: str, limits: ReadLimits) -> bytes:
    """A regular file at exactly ``path``, at most ``limits.max_bytes`` long, read within the time limit."""
    fd = _open(path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ImageProblem("not-a-file", f"{path} is {_describe_mode(info.st_mode)}, not a regular file")
        if _opened_path(fd, path) != os.path.normpath(path):
            raise ImageProblem("refused", f"{path} now leads through a symbolic link (it changed after the "
                                          "import); import the catalog again to have it checked")
        if info.st_size > limits.max_bytes:
            raise _too_big(path, limits)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return _read_bounded(fh, path, limits)
    except OSError as exc:
        raise ImageProblem("unreadable", f"{path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _too_big(where: str, limits: ReadLimits) -> ImageProblem:
    return ImageProblem("too-large", f"{where} is over {limits.max_bytes / 1e6:g} MB "
                                     "([images] max_original_mb in muses.toml)")


def _read_bounded(fh, where: str, limits: ReadLimits) -> bytes:
    """Read at most max_bytes, in chunks, giving up at the deadline (a file may grow while read)."""
    deadline = time.monotonic() + limits.timeout_s
    chunks, size = [], 0
    while chunk := fh.read1(CHUNK):  # read1: one system call, so the deadline is checked often
        size += len(chunk)
        if size > limits.max_bytes:
            raise _too_big(where, limits)
        if time.monotonic() > deadline:
            raise ImageProblem("too-slow", f"{where}: reading took longer than {limits.timeout_s:g} s")
        chunks.append(chunk)
    return b"".join(chunks)


class HostUnreachable(ImageProblem):
    """A photo server that cannot be reached at all (no such name, refused, timed out): every
    photo on it would fail the same way."""

    def __init__(self, url: str, reason: OSError, *, what: str = ""):
        self.host = host_of(url) if is_url(url) else url
        self.reason = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        super().__init__("download-failed", f"{what or url}: {self.reason}")


# -- fetching a URL -----------------------------------------------------------------------------
def _address_problem(host: str, address: str) -> ImageProblem | None:
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_global:
        return None
    kind = ("loopback" if ip.is_loopback else "link-local" if ip.is_link_local else
            "private" if ip.is_private else "reserved")
    return ImageProblem("refused", f"{host} is at {ip}, a {kind} address; pass --allow-private-urls "
                                   "to fetch photos from your own network")


def _connect(host: str, port: int, timeout: float | None, allow_private: bool) -> socket.socket:
    """A connection to ``host``, every address it resolves to checked first; the checked one is used
    (resolving again would let a name change between the check and the connection)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise HostUnreachable(host, exc, what=f"cannot resolve {host}") from exc
    if not allow_private:
        for *_, sockaddr in infos:
            if (problem := _address_problem(host, sockaddr[0])) is not None:
                raise problem
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"no address for {host}")


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allow_private: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout, self.allow_private)


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allow_private: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.allow_private = allow_private

    def connect(self) -> None:
        sock = _connect(self.host, self.port, self.timeout, self.allow_private)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def http_open(self, req):
        return self.do_open(_HTTPConnection, req, allow_private=self.allow_private)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool):
        super().__init__()
        self.allow_private = allow_private

    def https_open(self, req):
        return self.do_open(_HTTPSConnection, req, context=self._context, allow_private=self.allow_private)


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not is_url(newurl):
            raise ImageProblem("refused", f"{req.full_url} redirects to {newurl!r}; only http and https are fetched")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    # No proxy: the address checks must apply to the server the photo comes from.
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), _HTTPHandler(allow_private),
                                       _HTTPSHandler(allow_private), _RedirectHandler())


def fetch_url(url: str, limits: ReadLimits) -> bytes:
    """An http(s) photo, at most ``limits.max_bytes``, within ``limits.timeout_s`` in all."""
    if not is_url(url):
        raise ImageProblem("refused", f"{url!r}: only http and https URLs are fetched")
    try:
        with _opener(limits.allow_private_urls).open(url, timeout=limits.timeout_s) as response:
            length = response.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > limits.max_bytes:
                raise _too_big(url, limits)
            return _read_bounded(response, url, limits)
    except urllib.error.HTTPError as exc:
        raise ImageProblem("download-failed", f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, OSError):  # refused, timed out, no route: the host, not this photo
            raise HostUnreachable(url, exc.reason) from exc
        raise ImageProblem("download-failed", f"{url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ImageProblem("download-failed", f"{url}: {exc}") from exc
