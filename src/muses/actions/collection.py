"""The collection: import catalog records, check their photos, record, undo and export the
reviewers' decisions."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from muses.errors import MusesError, RunFailed
from muses.settings import ComputeSettings, Project

if TYPE_CHECKING:
    from muses.collection.decisions import Decision
    from muses.collection.images import GenerateReport
    from muses.collection.importers import ImportReport
    from muses.collection.store import Store

Progress = Callable[[int, "int | None"], None]
IMPORT_REPORT = "import-report.json"


# -- import ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportConfig:
    file: Path  # the export: CSV, JSON or JSON Lines
    format: str | None = None  # None: from the extension
    mapping: tuple[str, ...] = ()  # "ours=theirs": take our field from the export's key
    preset: str | None = None  # a known export's field mapping
    source: str | None = None  # source name stored on each item (None: the file name)
    encoding: str | None = None  # None: UTF-8 if the whole file is, else cp1252
    delimiter: str | None = None  # a CSV's cell separator (None: found out from the file)
    splits: tuple[str, ...] = ()  # 'field=SEP': cut cells of object_type or image at SEP
    batch_size: int = 500  # records per transaction
    image_roots: tuple[Path, ...] = ()  # folders image paths may point into, besides the file's own


@dataclass(frozen=True)
class ImportResult:
    report: ImportReport
    report_path: Path  # every skipped line and warning
    failure: str  # why the import counts as failed ("" when it did not)


def import_collection(project: Project, config: ImportConfig, *, progress: Progress | None = None) -> ImportResult:
    """Import (or update, by id) the records of ``config.file`` into the project's store and
    write import-report.json. ``progress(lines done, lines in all)``."""
    from muses.collection.importers import build_mapping, import_records, parse_splits
    from muses.collection.store import Store
    from muses.search import refresh_project_indexes

    report = import_records(
        Store.for_project(project), config.file, format=config.format,
        mapping=build_mapping(config.preset, config.mapping), source=config.source, encoding=config.encoding,
        delimiter=config.delimiter, splits=parse_splits(config.splits), batch_size=config.batch_size,
        roots=[*config.image_roots, *project.image_roots], progress=progress,
    )
    out = project.root / IMPORT_REPORT
    out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    failure = _import_failed(report)
    if not failure:
        refresh_project_indexes(project)
    return ImportResult(report, out, failure)


def preview_import(config: ImportConfig):
    """What importing ``config.file`` would store, from its first records: the columns with
    examples, which of our fields each becomes, the columns left unmapped with the ``--map`` line
    to take them (a :class:`muses.collection.preview.Preview`). Writes nothing; needs no project."""
    from muses.collection.importers import build_mapping
    from muses.collection.preview import preview_import as preview

    return preview(config.file, format=config.format, mapping=build_mapping(config.preset, config.mapping),
                   encoding=config.encoding, delimiter=config.delimiter, splits=config.splits)


def _import_failed(report: ImportReport) -> str:
    """Why an import counts as failed (nothing, or under half of the records, imported), or ""."""
    read = report.imported + len(report.skipped)
    if report.imported == 0:
        return f"nothing imported: all {read} records were skipped" if read else "the file holds no records"
    if report.imported < read / 2:
        return (f"only {report.imported} of {read} records imported (fewer than half); the rest were skipped: "
                "check the field mapping (--map, --preset) and the skipped lines above")
    return ""


# -- check photos (generate-images) ----------------------------------------------------------------
@dataclass(frozen=True)
class CheckPhotosConfig:
    force: bool = False  # check photos already done again
    workers: int | None = None  # processes; 0 = one per CPU core (None: muses.toml [images] workers)
    max_side: int | None = None  # long side of the copies (None: muses.toml [images] max_side)
    allow_private_urls: bool = False  # also fetch URLs on loopback, link-local and private addresses
    image_url_map: tuple[str, ...] = ()  # 'PREFIX=FOLDER': read photo URLs under PREFIX from a local copy
    compute: ComputeSettings | None = None  # None: muses.toml [compute]
    listed: int = 10  # problem photos named in the result; the report file holds them all


@dataclass(frozen=True)
class ProblemPhoto:
    item_id: str  # the object number ("?" where no item holds the photo any more)
    original: str
    problem: str


@dataclass(frozen=True)
class CheckPhotosResult:
    report: GenerateReport
    problems: list[ProblemPhoto]  # this run's first ``listed`` problem photos


def check_photos(project: Project, config: CheckPhotosConfig = CheckPhotosConfig(), *,
                 progress: Progress | None = None) -> CheckPhotosResult:
    """Check every new or changed photo and make its small working copy; problem photos are
    listed by object number and left out of training. ``progress(photos done, photos in all)``."""
    from muses.collection.images import generate_images, object_numbers
    from muses.collection.store import PROBLEM, Store
    from muses.search import refresh_project_indexes

    report = generate_images(project, force=config.force, workers=config.workers, max_side=config.max_side,
                             allow_private_urls=config.allow_private_urls, image_url_map=config.image_url_map,
                             progress=progress, compute=config.compute or project.settings.compute)
    refresh_project_indexes(project)
    listed = [f for f in report.problem_files if f["status"] == PROBLEM][: config.listed]
    owners = object_numbers(Store.for_project(project), [f["original"] for f in listed]) if listed else {}
    problems = [ProblemPhoto(owners.get(f["original"], "?"), f["original"], f["problem"]) for f in listed]
    return CheckPhotosResult(report, problems)


# -- the reviewers' decisions ----------------------------------------------------------------------
@dataclass(frozen=True)
class RecordDecisionConfig:
    item_id: str
    reviewer: str
    # one of muses.collection.decisions.ACTIONS; None: the action that gives the record ``chosen``
    # (the object page names only a class)
    action: str | None = None
    withdraw: bool = False  # take the record's current decision back instead (a row of its own)
    chosen: str | None = None  # the class, for "another class" (with action None: None is none of these)
    catalog_value: str = ""  # the catalog's class, as muses knows it ("" if none)
    suggested_value: str = ""  # the model's class
    note: str | None = None  # the reviewer's words, kept with the decision
    list_name: str | None = None  # the review list the decision was made in


@dataclass(frozen=True)
class UndoDecisionConfig:
    decision_id: int  # the decision's number (``record_decision(...).id``)


def record_decision(project: Project, config: RecordDecisionConfig, *, store: Store | None = None) -> Decision:
    """Store a reviewer's decision on a record's class (a revision of any earlier one), or take
    its current decision back (``withdraw``); returns the stored row (a repeat of the current
    decision adds none). A caller that keeps the store open (the web app) passes it."""
    from muses.collection import decisions as dec

    store = store or _store(project)
    if config.withdraw:
        return dec.withdraw_decision(store, item_id=config.item_id, reviewer=config.reviewer, note=config.note)
    action = config.action if config.action is not None else dec.action_for(
        config.chosen, catalog_value=config.catalog_value, suggested_value=config.suggested_value)
    return dec.record_decision(store, item_id=config.item_id, action=action, reviewer=config.reviewer,
                               catalog_value=config.catalog_value, suggested_value=config.suggested_value,
                               chosen=config.chosen, note=config.note, list_name=config.list_name)


def undo_decision(project: Project, config: UndoDecisionConfig, *, store: Store | None = None) -> Decision:
    """Take back a slip of the key: the decision is marked undone (kept, for the record) and the
    record's earlier decision, if any, is current again."""
    from muses.collection.decisions import undo_decision as undo

    return undo(store or _store(project), config.decision_id)


@dataclass(frozen=True)
class DecisionsConfig:
    since: str | None = None  # only decisions made on or after this day (YYYY-MM-DD, UTC)
    since_last_export: bool = False  # only decisions made since the last export: work in batches
    plain_utf8: bool = False  # no byte-order mark (Excel on Windows needs it for accented names)
    out: Path | None = None  # write the CSV here (None: only return it)
    remember: bool = True  # note the export for the next since_last_export (a read-only server writes nothing)


@dataclass(frozen=True)
class DecisionsResult:
    rows: int  # decided records in the file
    data: bytes  # the CSV: object number, title, field, catalog value, decided value, ...


def export_decisions(project: Project, config: DecisionsConfig = DecisionsConfig(), *,
                     store: Store | None = None) -> DecisionsResult:
    """The reviewers' current decisions (one per record; undone and withdrawn ones left out) as
    CSV for the collection management system, naturally sorted by object number; the export is
    remembered for the next ``since_last_export`` unless ``config.remember`` is off. A caller that
    keeps the store open (the web app) passes it as ``store``."""
    from muses.collection.decisions import export_decisions as export, parse_since

    if config.since and config.since_last_export:
        raise MusesError("give --since or --since-last-export, not both")
    since = parse_since(config.since) if config.since else None
    data, rows = export(store or _store(project), since=since, since_last=config.since_last_export,
                        bom=not config.plain_utf8, remember=config.remember)
    if config.out is not None:
        try:
            config.out.write_bytes(data)
        except OSError as exc:
            raise RunFailed(f"cannot write {config.out}: {exc.strerror or exc}; choose another --out") from exc
    return DecisionsResult(rows, data)


def _store(project: Project) -> Store:
    from muses.collection.store import Store

    return Store.for_project(project)
