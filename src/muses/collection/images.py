"""ML-size copies of the collection's photos, with the image checks, in parallel.

``generate_images(project)`` takes every image still pending (plus, for local files, any
whose bytes changed since they were checked), decodes it safely with :mod:`muses.imaging`
(the decoder prediction uses too) and checks it (:mod:`muses.collection.image_checks`),
writes a JPEG whose long side is ``max_side`` under the project's images folder, named by the
original's sha256, and stores checksum, size, status and problem. Beside it goes a display copy
(long side ``display_side``, 1,200 px by default) for people to judge the photo by on the web
pages; the model keeps its small copy. The display copy's name follows from the checksum, so the
store needs no column for it (:func:`display_path`). Results are committed every
few dozen images, so an interrupted run resumes where it stopped; one bad file never stops the
run. ``images/report.json`` lists problems.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import json
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from muses.collection.image_checks import ImageProblem, check_content, decode
from muses.collection.sources import (
    HostUnreachable,
    ReadLimits,
    host_of,
    is_url,
    parse_url_map,
    read_original,
    url_root,
)
from muses.compute import ComputeSettings
from muses.collection.store import PENDING, PROBLEM, USABLE_STATUSES, Image, Item, Store, problem_category
from muses.errors import RunFailed
from muses.imaging import orient
from muses.settings import ConfigError, Project

COMMIT_EVERY = 64  # results per transaction: bounds the work an interruption loses
HOST_FAILURES = 5  # photos in a row a server may fail to answer before its others are left pending
WAITING = "waiting"  # the problem word of a pending photo not tried, its server being unreachable
REPORT_NAME = "report.json"
LISTED_PROBLEMS = 200  # problem images listed in report.json beyond the counts


@dataclass(frozen=True)
class Settings:
    max_side: int
    quality: int
    max_pixels: int
    allow_network: bool
    limits: ReadLimits = ReadLimits()
    display_side: int = 0  # 0: no display copy


class WriteFailed(RunFailed):
    """A file under the images folder could not be written (disk full, no permission): the run
    stops and the photo stays pending, since the photo itself is fine."""


class StoreBusy(RunFailed):
    """The store could not save this run's results (locked by another program, or read-only)."""


@dataclass(frozen=True)
class Task:
    image_id: int
    original: str
    checksum: str | None  # from the last check; None if never checked
    done: bool  # last check finished (ok/cropped with its copy on disk, or a lasting problem)


@dataclass
class Result:
    image_id: int
    changed: bool  # False: the original is as last checked, nothing written
    status: str = PENDING
    problem: str | None = None
    checksum: str | None = None
    width: int | None = None
    height: int | None = None
    stored_path: str | None = None
    seconds: float = 0.0
    host_down: str | None = None  # the photo's server could not be reached at all


def stored_name(checksum: str, max_side: int) -> str:
    """Relative path of an ML-size copy: by content, so two records sharing a photo share it."""
    return f"{checksum[:2]}/{checksum}-{max_side}.jpg"


def display_path(images_dir: Path, checksum: str | None, display_side: int) -> Path | None:
    """Where a photo's display copy is (None when there is none to look for)."""
    if not checksum or display_side <= 0:
        return None
    return images_dir / stored_name(checksum, display_side)


def _jpeg(img: PILImage.Image, side: int, quality: int) -> bytes:
    img.thumbnail((side, side), PILImage.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _check(task: Task, settings: Settings) -> tuple[Result, bytes | None, bytes | None]:
    """Read and check one photo: its result, and the JPEG bytes of its copy and of its display
    copy when usable. Never raises: a failure of the photo becomes its result."""
    result = Result(task.image_id, changed=True)
    try:
        data = read_original(task.original, settings.limits)
        result.checksum = hashlib.sha256(data).hexdigest()
        if task.done and result.checksum == task.checksum:
            return Result(task.image_id, changed=False), None, None
        decoded = decode(data, max_pixels=settings.max_pixels, min_side=max(settings.max_side, settings.display_side))
        result.width, result.height = decoded.width, decoded.height
        content = check_content(decoded.image)
        img = orient(content.image, decoded.orientation)
        display = _jpeg(img.copy(), settings.display_side, settings.quality) if settings.display_side else None
        result.status, result.problem = content.status, content.problem
        return result, _jpeg(img, settings.max_side, settings.quality), display
    except HostUnreachable as exc:
        result.status, result.problem, result.host_down = PROBLEM, str(exc), exc.host
    except ImageProblem as exc:
        result.status, result.problem = PROBLEM, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad file must never abort the run
        result.status, result.problem = PROBLEM, f"unreadable: {type(exc).__name__}: {exc}"
    return result, None, None


_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


def _write_atomically(data: bytes, target: Path, *, state: str) -> None:
    """Write ``target`` under its final name at once (a killed run never leaves half a file there).
    Any failure here is the machine's, not the photo's: :class:`WriteFailed`, ``state`` saying
    what was kept."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        todo = "free some disk space" if exc.errno in _FULL else "make the images folder writable"
        raise WriteFailed(f"cannot write {target}: {exc.strerror or exc}. {state}: {todo}, then run "
                          "`muses generate-images` again") from exc


def process_image(task: Task, settings: Settings, images_dir: str, project_root: str) -> Result:
    """Check one photo and write its ML-size copy. A problem of the photo becomes the result;
    a failure to write the copy raises :class:`WriteFailed`."""
    start = time.perf_counter()
    result, jpeg, display = _check(task, settings)
    if jpeg is not None:
        target = Path(images_dir) / stored_name(result.checksum or "", settings.max_side)
        _write_atomically(jpeg, target, state="The run stopped; photos not done yet stay pending")
        result.stored_path = os.path.relpath(target, project_root)
    shown = display_path(Path(images_dir), result.checksum, settings.display_side)
    if display is not None and shown is not None:
        _write_atomically(display, shown, state="The run stopped; photos not done yet stay pending")
    result.seconds = time.perf_counter() - start
    return result


def _process_star(args: tuple) -> Result:
    return process_image(*args)


# -- choosing the work ----------------------------------------------------------------------
# Problems that may go away without the file changing (a network back, a file put in place, a
# reference fixed by importing again).
_RETRIED = ("download-failed", "missing", "too-slow", "refused", "not-a-file")


def fetched(original: str, settings: Settings) -> bool:
    """Whether a photo is read over the network (a URL no [images] url_map prefix covers)."""
    return is_url(original) and not any(original.startswith(prefix) for prefix, _ in settings.limits.url_map)


def _tasks(store: Store, project: Project, settings: Settings, *, force: bool) -> tuple[list[Task], int]:
    """Images to (re)check, and how many URL images wait for ``allow_network``."""
    tasks, waiting = [], 0
    for image in store.images():
        url = fetched(image.original, settings)
        if url and not settings.allow_network:
            waiting += image.status == PENDING or force
            continue
        if image.status in USABLE_STATUSES:  # done if its copy exists at the size asked for now
            expected = project.images_dir / stored_name(image.checksum or "", settings.max_side)
            done = bool(image.stored_path) and project.path(image.stored_path) == expected and expected.is_file()
            shown = display_path(project.images_dir, image.checksum, settings.display_side)
            done = done and (shown is None or shown.is_file())  # made before display copies existed
        else:
            done = image.status == PROBLEM and problem_category(image.problem) not in _RETRIED
        if force:
            done = False
        if url and done:
            continue  # a URL is fetched once; --force fetches it again
        tasks.append(Task(image.id, image.original, image.checksum, done))
    return tasks, waiting


# -- the run --------------------------------------------------------------------------------
@dataclass
class GenerateReport:
    processed: int = 0  # images checked this run
    unchanged: int = 0  # already done, original unchanged
    waiting_for_network: int = 0  # URL images left pending ([images] allow_network = false)
    hosts_down: dict[str, dict[str, Any]] = field(default_factory=dict)  # host → reason, failed, left pending
    by_status: Counter = field(default_factory=Counter)  # this run's outcomes
    problems: Counter = field(default_factory=Counter)  # this run's problems per category
    problem_files: list[dict[str, Any]] = field(default_factory=list)  # this run's problem and cropped images
    seconds: float = 0.0
    workers: int = 1
    report_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        # asdict() would rebuild the Counters from their items, counting the pairs instead
        return {**vars(self), "by_status": dict(self.by_status), "problems": dict(self.problems.most_common())}


def url_map(project: Project, extra: tuple[str, ...] | list[str] = ()) -> tuple[tuple[str, str], ...]:
    """``--image-url-map`` entries, then ``[images] url_map`` (folders relative to the project)."""
    configured = []
    for entry in project.settings.images.url_map:
        prefix, sep, folder = entry.rpartition("=")
        configured.append(f"{prefix}={project.path(folder)}" if sep else entry)
    return parse_url_map([*extra, *configured])


def _settings(project: Project, max_side: int | None, allow_private_urls: bool = False,
              image_url_map: tuple[str, ...] | list[str] = ()) -> Settings:
    # muses.toml's values were range-checked when it was read; only the command's own --max-side is new here.
    cfg = project.settings.images
    limits = ReadLimits(max_bytes=int(cfg.max_original_mb * 1_000_000), timeout_s=cfg.read_timeout_s,
                        allow_private_urls=allow_private_urls or cfg.allow_private_urls,
                        url_map=url_map(project, image_url_map))
    settings = Settings(max_side=int(max_side if max_side is not None else cfg.max_side), quality=cfg.quality,
                        max_pixels=cfg.max_pixels, allow_network=cfg.allow_network, limits=limits,
                        display_side=cfg.display_side)
    if settings.max_side < 16:
        raise ConfigError(f"max_side must be at least 16 pixels, got {settings.max_side}")
    return settings


def resolve_workers(workers: int | None, project: Project) -> int:
    n = int(project.settings.images.workers if workers is None else workers)
    if n < 0:
        raise ConfigError(f"workers must be 0 (one per CPU core) or more, got {n}")
    return n or os.cpu_count() or 1


class HostWatch:
    """Counts each photo server's failures in a row; after :data:`HOST_FAILURES` its other photos
    are not tried (58,000 URLs on a server that is down would otherwise each wait for a timeout)."""

    def __init__(self, limit: int = HOST_FAILURES):
        self.limit = limit
        self.in_a_row: Counter[str] = Counter()
        self.down: dict[str, dict[str, Any]] = {}  # host → {"reason", "failed", "pending", "prefix"}
        self.skipped: list[Task] = []

    def wanted(self, task: Task) -> bool:
        host = host_of(task.original) if is_url(task.original) else ""
        if host in self.down:
            self.down[host]["pending"] += 1
            self.skipped.append(task)
            return False
        return True

    def saw(self, original: str, result: Result) -> None:
        if not is_url(original):
            return
        host = host_of(original)
        if result.host_down is None:
            self.in_a_row[host] = 0
            return
        self.in_a_row[host] += 1
        if self.in_a_row[host] >= self.limit and host not in self.down:
            reason = (result.problem or "").rpartition(": ")[2]
            self.down[host] = {"reason": reason, "failed": self.in_a_row[host], "pending": 0,
                               "prefix": url_root(original)}


def _run(tasks: list[Task], settings: Settings, project: Project, workers: int,
         compute: ComputeSettings | None = None, watch: HostWatch | None = None) -> Iterator[Result]:
    """Each task's result, in order; a task whose server ``watch`` gave up on is skipped (handed
    out lazily, so the decision is taken on the results so far)."""
    args = ((t, settings, str(project.images_dir), str(project.root)) for t in tasks
            if watch is None or watch.wanted(t))
    if compute is not None and compute.uses_ray:
        from muses.compute.ray_map import map_ordered

        yield from map_ordered(_process_star, args, settings=compute)
        return
    if workers == 1 or len(tasks) < 2:
        yield from map(_process_star, args)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)))
    try:
        yield from _windowed(pool, args, window=workers * 4)
    except BaseException:
        # Ctrl-C or a stopped run: drop the queued photos instead of waiting for them.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _windowed(pool: ProcessPoolExecutor, args: Iterator[tuple], *, window: int) -> Iterator[Result]:
    """``pool.map`` that submits at most ``window`` tasks ahead of the results (``map`` takes the
    whole iterable at once, so a server found down would still have all its photos queued)."""
    queue: deque = deque()
    for arg in args:
        queue.append(pool.submit(_process_star, arg))
        if len(queue) >= window:
            yield queue.popleft().result()
    while queue:
        yield queue.popleft().result()


def _save(store: Store, results: list[Result]) -> None:
    rows = [{"id": r.image_id, "status": r.status, "problem": r.problem, "checksum": r.checksum,
             "width": r.width, "height": r.height, "stored_path": r.stored_path} for r in results]
    try:
        with store.transaction() as s:
            s.execute(update(Image), rows)
    except RunFailed as exc:  # the store's own message names the lock or the full disk and what to do
        raise StoreBusy(f"{exc} The results of {len(rows)} photos were not saved: they stay pending.") from exc
    except OperationalError as exc:
        raise StoreBusy(f"cannot save the results of {len(rows)} photos: {exc.orig or exc}. Another program may "
                        "be writing to the store (wait for it to finish), or the project folder is read-only; "
                        "then run `muses generate-images` again: those photos are still pending") from exc


def generate_images(project: Project, *, store: Store | None = None, force: bool = False,
                    workers: int | None = None, max_side: int | None = None, allow_private_urls: bool = False,
                    image_url_map: tuple[str, ...] | list[str] = (),
                    progress: Callable[[int, int], Any] | None = None,
                    compute: ComputeSettings | None = None) -> GenerateReport:
    """Check every image that needs it and write its ML-size copy; returns this run's report.

    ``force``: check every image again. ``workers``: processes (None: muses.toml's
    ``[images] workers``; 0: one per CPU core). ``max_side``: long side of the copies (None:
    ``[images] max_side``). ``allow_private_urls``: fetch URLs on loopback, link-local and private
    addresses too. ``image_url_map``: ``PREFIX=FOLDER`` entries besides ``[images] url_map``:
    photo URLs under PREFIX are read from FOLDER. A server that fails :data:`HOST_FAILURES`
    photos in a row is given up for this run: its other photos stay pending, each saying why, and
    ``report.hosts_down`` names it. ``progress(done, total)`` is called after each image. ``compute`` with the Ray
    engine checks the photos in Ray tasks (the store is written here, as the results come in). A copy that cannot be
    written (disk full, no permission) or results the store cannot save stop the run with a
    :class:`~muses.errors.RunFailed`; the photos not done stay pending.
    Also writes ``images/report.json`` (see :func:`write_report`).
    """
    settings = _settings(project, max_side, allow_private_urls, image_url_map)
    n_workers = resolve_workers(workers, project)
    store = store or Store.for_project(project)
    start = time.perf_counter()
    tasks, waiting = _tasks(store, project, settings, force=force)
    report = GenerateReport(waiting_for_network=waiting, workers=n_workers)
    originals = {t.image_id: t.original for t in tasks}
    pending: list[Result] = []
    watch = HostWatch()
    try:
        for done, result in enumerate(_run(tasks, settings, project, n_workers, compute, watch), start=1):
            watch.saw(originals[result.image_id], result)
            if result.changed:
                report.processed += 1
                report.by_status[result.status] += 1
                if result.status == PROBLEM:
                    report.problems[problem_category(result.problem)] += 1
                if result.problem:
                    report.problem_files.append({"original": originals[result.image_id], "status": result.status,
                                                 "problem": result.problem})
                pending.append(result)
            else:
                report.unchanged += 1
            if len(pending) >= COMMIT_EVERY:
                _save(store, pending)
                pending = []
            if progress is not None:
                progress(done, len(tasks))
    finally:
        if pending:  # keep finished work even when interrupted
            _save(store, pending)
    if watch.down:
        _save(store, _left_pending(watch))
        report.hosts_down = watch.down
        if progress is not None:  # the photos left pending are done with, for this run
            progress(len(tasks), len(tasks))
    report.seconds = time.perf_counter() - start
    report.report_path = str(write_report(project, store, report, settings))
    return report


def _left_pending(watch: HostWatch) -> list[Result]:
    """The untried photos of the servers given up on: pending, with the reason on each (the object
    page shows it)."""
    return [Result(task.image_id, changed=True, status=PENDING, checksum=task.checksum,
                   problem=f"{WAITING}: {host_of(task.original)} could not be reached "
                           f"({watch.down[host_of(task.original)]['reason']}); not tried")
            for task in watch.skipped]


def photo_note(original: str, status: str, problem: str | None) -> str | None:
    """Why a photo shows no picture on the object page, or None when it has one or its problem says it."""
    if status != PENDING:
        return None
    if problem:
        return f"not fetched yet: {problem.partition(': ')[2] or problem}"
    if is_url(original):
        return ("not fetched yet: photo URLs are read by `muses generate-images` with [images] allow_network = true "
                "in muses.toml, or from a local copy named by [images] url_map")
    return "not checked yet: run `muses generate-images`"


def photos_next(project: Project, store: Store) -> str | None:
    """The one next step about the collection's photos, as every command's "next:" line says it;
    None when no photo waits for anything."""
    settings = _settings(project, None)
    local = network = unreachable = 0
    roots: Counter[str] = Counter()
    with store.session() as s:
        for original, problem in s.execute(select(Image.original, Image.problem).where(Image.status == PENDING)):
            if problem and problem.startswith(f"{WAITING}:"):
                unreachable += 1
                roots[url_root(original)] += 1
            elif fetched(original, settings) and not settings.allow_network:
                network += 1
            else:
                local += 1
    if unreachable:
        root = roots.most_common(1)[0][0]
        return (f"{unreachable} photos wait for a server that could not be reached ({host_of(root)}): give their "
                f"local folder with `muses generate-images --image-url-map {root}=FOLDER` ([images] url_map in "
                "muses.toml keeps it), or check the network and run `muses generate-images` again")
    if network:
        return (f"{network} photos are URLs, not fetched while [images] allow_network = false: set it to true in "
                "muses.toml, or give their local folder with `muses generate-images --image-url-map PREFIX=FOLDER`; "
                "meanwhile `muses label-preview` labels the catalog from its text")
    if local:
        return f"muses generate-images   ({local} photos not checked yet)"
    return None


def collection_problems(store: Store) -> dict[str, Any]:
    """The whole collection's image state: counts per status and per problem category."""
    with store.session() as s:
        rows = s.execute(select(Image.item_id, Item.number.label("object_number"), Image.original, Image.status, Image.problem)
                         .join(Item, Item.id == Image.item_id)
                         .where(Image.problem.is_not(None)).order_by(Image.item_id, Image.position)).all()
    stats = store.stats()
    return {"by_status": stats["images_by_status"], "problems": stats["problem_categories"],
            "problem_files": [{"item_id": r.item_id, "object_number": r.object_number,
                               "original": r.original, "status": r.status, "problem": r.problem}
                              for r in rows[:LISTED_PROBLEMS]],
            "problem_files_total": len(rows)}


def object_numbers(store: Store, originals: list[str]) -> dict[str, str]:
    """The object number of the item each photo (by its stored reference) belongs to."""
    with store.session() as s:
        return {original: number for original, number in s.execute(
            select(Image.original, Item.number).join(Item, Item.id == Image.item_id)
            .where(Image.original.in_(originals)))}


def write_report(project: Project, store: Store, run: GenerateReport, settings: Settings) -> Path:
    """``images/report.json``: this run's counts, and every problem or cropped image in the store."""
    path = project.images_dir / REPORT_NAME
    content = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "settings": asdict(settings),
               "run": {k: v for k, v in run.to_dict().items() if k not in ("problem_files", "report_path")},
               "collection": collection_problems(store)}
    _write_atomically(json.dumps(content, indent=2, default=str).encode("utf-8"), path,
                      state="The photos' results are saved; only this report is missing")
    return path
