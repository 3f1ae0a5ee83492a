"""ML-size copies of the collection's photos, with the image checks, in parallel.

``generate_images(project)`` takes every image still pending (plus, for local files, any
whose bytes changed since they were checked), decodes it safely (see
:mod:`muses.collection.image_checks`), writes a JPEG whose long side is ``max_side`` under the
project's images folder, named by the original's sha256, and stores checksum, size, status
and problem. Results are committed every few dozen images, so an interrupted run resumes
where it stopped; one bad file never stops the run. ``images/report.json`` lists problems.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from sqlalchemy import select, update

from muses.collection.image_checks import ImageProblem, check_content, decode, orient
from muses.collection.importers import URL_SCHEMES
from muses.collection.store import PENDING, PROBLEM, USABLE_STATUSES, Image, Store, problem_category
from muses.settings import ConfigError, Project

COMMIT_EVERY = 64  # results per transaction: bounds the work an interruption loses
DOWNLOAD_TIMEOUT_S = 30
REPORT_NAME = "report.json"
LISTED_PROBLEMS = 200  # problem images listed in report.json beyond the counts


@dataclass(frozen=True)
class Settings:
    max_side: int
    quality: int
    max_pixels: int
    allow_network: bool


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


def _read_original(original: str) -> bytes:
    if original.lower().startswith(URL_SCHEMES):
        try:
            with urllib.request.urlopen(original, timeout=DOWNLOAD_TIMEOUT_S) as response:  # noqa: S310 - user's URLs
                return response.read()
        except OSError as exc:
            raise ImageProblem("download-failed", f"{original}: {exc}") from exc
    try:
        return Path(original).read_bytes()
    except FileNotFoundError as exc:
        raise ImageProblem("missing", f"no file at {original}") from exc
    except OSError as exc:
        raise ImageProblem("unreadable", f"{original}: {exc.strerror or exc}") from exc


def stored_name(checksum: str, max_side: int) -> str:
    """Relative path of an ML-size copy: by content, so two records sharing a photo share it."""
    return f"{checksum[:2]}/{checksum}-{max_side}.jpg"


def process_image(task: Task, settings: Settings, images_dir: str, project_root: str) -> Result:
    """Check one photo and write its ML-size copy. Never raises: failures become the result."""
    start = time.perf_counter()
    result = Result(task.image_id, changed=True)
    try:
        data = _read_original(task.original)
        result.checksum = hashlib.sha256(data).hexdigest()
        if task.done and result.checksum == task.checksum:
            return Result(task.image_id, changed=False)
        decoded = decode(data, max_pixels=settings.max_pixels, min_side=settings.max_side)
        result.width, result.height = decoded.width, decoded.height
        content = check_content(decoded.image)
        img = orient(content.image, decoded.orientation)
        img.thumbnail((settings.max_side, settings.max_side), PILImage.Resampling.BICUBIC)
        target = Path(images_dir) / stored_name(result.checksum, settings.max_side)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        img.save(tmp, "JPEG", quality=settings.quality, optimize=True)
        os.replace(tmp, target)  # a killed run never leaves half a JPEG under the final name
        result.stored_path = os.path.relpath(target, project_root)
        result.status, result.problem = content.status, content.problem
    except ImageProblem as exc:
        result.status, result.problem = PROBLEM, str(exc)
    except Exception as exc:  # noqa: BLE001 - one bad file must never abort the run
        result.status, result.problem = PROBLEM, f"unreadable: {type(exc).__name__}: {exc}"
    result.seconds = time.perf_counter() - start
    return result


def _process_star(args: tuple) -> Result:
    return process_image(*args)


# -- choosing the work ----------------------------------------------------------------------
_RETRIED = ("download-failed", "missing")  # problems that may go away without the file changing


def _tasks(store: Store, project: Project, settings: Settings, *, force: bool) -> tuple[list[Task], int]:
    """Images to (re)check, and how many URL images wait for ``allow_network``."""
    tasks, waiting = [], 0
    for image in store.images():
        is_url = image.original.lower().startswith(URL_SCHEMES)
        if is_url and not settings.allow_network:
            waiting += image.status == PENDING or force
            continue
        if image.status in USABLE_STATUSES:  # done if its copy exists at the size asked for now
            expected = project.images_dir / stored_name(image.checksum or "", settings.max_side)
            done = bool(image.stored_path) and project.path(image.stored_path) == expected and expected.is_file()
        else:
            done = image.status == PROBLEM and problem_category(image.problem) not in _RETRIED
        if force:
            done = False
        if is_url and done:
            continue  # a URL is fetched once; --force fetches it again
        tasks.append(Task(image.id, image.original, image.checksum, done))
    return tasks, waiting


# -- the run --------------------------------------------------------------------------------
@dataclass
class GenerateReport:
    processed: int = 0  # images checked this run
    unchanged: int = 0  # already done, original unchanged
    waiting_for_network: int = 0  # URL images left pending ([images] allow_network = false)
    by_status: Counter = field(default_factory=Counter)  # this run's outcomes
    problems: Counter = field(default_factory=Counter)  # this run's problems per category
    problem_files: list[dict[str, Any]] = field(default_factory=list)  # this run's problem and cropped images
    seconds: float = 0.0
    workers: int = 1
    report_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        # asdict() would rebuild the Counters from their items, counting the pairs instead
        return {**vars(self), "by_status": dict(self.by_status), "problems": dict(self.problems.most_common())}


def _settings(project: Project, max_side: int | None) -> Settings:
    cfg = project.config["images"]
    settings = Settings(max_side=int(max_side if max_side is not None else cfg["max_side"]),
                        quality=int(cfg["quality"]), max_pixels=int(cfg["max_pixels"]),
                        allow_network=bool(cfg["allow_network"]))
    if settings.max_side < 16:
        raise ConfigError(f"max_side must be at least 16 pixels, got {settings.max_side}")
    if not 1 <= settings.quality <= 100:
        raise ConfigError(f"[images] quality must be between 1 and 100, got {settings.quality}")
    if settings.max_pixels < 1:
        raise ConfigError(f"[images] max_pixels must be positive, got {settings.max_pixels}")
    return settings


def resolve_workers(workers: int | None, project: Project) -> int:
    n = int(project.config["images"]["workers"] if workers is None else workers)
    if n < 0:
        raise ConfigError(f"workers must be 0 (one per CPU core) or more, got {n}")
    return n or os.cpu_count() or 1


def _run(tasks: list[Task], settings: Settings, project: Project, workers: int) -> Iterator[Result]:
    args = ((t, settings, str(project.images_dir), str(project.root)) for t in tasks)
    if workers == 1 or len(tasks) < 2:
        yield from map(_process_star, args)
        return
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        yield from pool.map(_process_star, args, chunksize=max(1, min(16, len(tasks) // (workers * 4))))


def _save(store: Store, results: list[Result]) -> None:
    rows = [{"id": r.image_id, "status": r.status, "problem": r.problem, "checksum": r.checksum,
             "width": r.width, "height": r.height, "stored_path": r.stored_path} for r in results]
    with store.transaction() as s:
        s.execute(update(Image), rows)


def generate_images(project: Project, *, store: Store | None = None, force: bool = False,
                    workers: int | None = None, max_side: int | None = None,
                    progress: Callable[[int, int], Any] | None = None) -> GenerateReport:
    """Check every image that needs it and write its ML-size copy; returns this run's report.

    ``force``: check every image again. ``workers``: processes (None: muses.toml's
    ``[images] workers``; 0: one per CPU core). ``max_side``: long side of the copies (None:
    ``[images] max_side``). ``progress(done, total)`` is called after each image.
    Also writes ``images/report.json`` (see :func:`write_report`).
    """
    settings = _settings(project, max_side)
    n_workers = resolve_workers(workers, project)
    store = store or Store.for_project(project)
    start = time.perf_counter()
    tasks, waiting = _tasks(store, project, settings, force=force)
    report = GenerateReport(waiting_for_network=waiting, workers=n_workers)
    originals = {t.image_id: t.original for t in tasks}
    pending: list[Result] = []
    try:
        for done, result in enumerate(_run(tasks, settings, project, n_workers), start=1):
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
    report.seconds = time.perf_counter() - start
    report.report_path = str(write_report(project, store, report, settings))
    return report


def collection_problems(store: Store) -> dict[str, Any]:
    """The whole collection's image state: counts per status and per problem category."""
    with store.session() as s:
        rows = s.execute(select(Image.item_id, Image.original, Image.status, Image.problem)
                         .where(Image.problem.is_not(None)).order_by(Image.item_id, Image.position)).all()
    stats = store.stats()
    return {"by_status": stats["images_by_status"], "problems": stats["problem_categories"],
            "problem_files": [{"item_id": r.item_id, "original": r.original, "status": r.status,
                               "problem": r.problem} for r in rows[:LISTED_PROBLEMS]],
            "problem_files_total": len(rows)}


def write_report(project: Project, store: Store, run: GenerateReport, settings: Settings) -> Path:
    """``images/report.json``: this run's counts, and every problem or cropped image in the store."""
    path = project.images_dir / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "settings": asdict(settings),
               "run": {k: v for k, v in run.to_dict().items() if k not in ("problem_files", "report_path")},
               "collection": collection_problems(store)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(content, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path
