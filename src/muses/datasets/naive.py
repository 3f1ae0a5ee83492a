"""The ``naive`` exporter: catalog keywords → labeled, split dataset folder (docs/CONTRACTS.md).

``NaiveExporter(seed=0).export(project)`` labels every item of the store with the project's
definitions, keeps the labeled items that have usable images, samples and splits them per
object, and writes ``datasets/naive/`` with the manifest, image copies and labeling report.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muses.collection.decisions import NOT_ONE, Decision, current_decisions
from muses.collection.store import Item, Store
from muses import csvfile
from muses.labeling.matching import EXCLUDED, LABELED, UNLABELED, Label, Matcher, record_fields, searched_fields
from muses.labeling.report import REVIEWED, LeftOut, ReportTally, load_gold, write_report
from muses.progress import progress_bar
from muses.datasets.folder import MANIFEST_COLUMNS, SPLITS
from muses.datasets.splitting import (
    DEFAULT_SPLIT,
    SplitError,
    min_items_for,
    parse_split,
    sample_per_class,
    split_counts,
    stratified_split,
)
from muses.errors import RunFailed
from muses.labeling.definitions import Definitions, load_definitions
from muses.predictions import OTHER

__all__ = ["ExportResult", "NaiveExporter", "compare_with_catalog", "field_values", "preview"]

LEFT_OUT = "left-out.csv"  # every conflicting, excluded and unlabeled record, beside the report
FEW_TEST_ITEMS = 5  # below this a class's test metrics are too noisy to trust; warn


@dataclass
class ExportResult:
    path: Path  # the dataset folder
    report: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _image_name(item_id: str, position: int, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", item_id)
    if safe != item_id:  # two ids may sanitize alike; the hash keeps their files apart
        safe += "-" + hashlib.sha1(item_id.encode("utf-8")).hexdigest()[:8]
    return f"{safe}_{position}{suffix or '.jpg'}"


def _remove_abandoned(out: Path) -> None:
    """Delete the temporary folders of earlier exports to ``out`` whose process is gone
    (killed before it could clean up); a running export's folder is left alone."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:tmp|old)-(\d+)(?:-.*)?")
    for path in out.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not _alive(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate the process there; keep the folder instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@dataclass
class _Labeled:
    """One pass over the store: the report's tally, and only what choosing the dataset needs."""

    tally: ReportTally
    # labeled (and, for ``other``, unlabeled) items with image files -> (class or None, how many files)
    candidates: dict[str, tuple[str | None, int]]
    skipped: list[dict[str, str]]  # usable images of labeled items whose file is missing
    # items with image files a reviewer decided are none of the classes -> how many files (for ``other``)
    none_of_these: dict[str, int] = field(default_factory=dict)


def _image_files(project, item: Item) -> tuple[list[tuple[int, Path]], list[str]]:
    """(position, file) of the item's usable images whose ML-size copy exists, and the others."""
    found, missing = [], []
    for im in item.usable_images:
        path = project.path(im.stored_path) if im.stored_path else None
        if path is not None and path.is_file():
            found.append((im.position, path))
        else:
            missing.append(str(im.stored_path or im.original))
    return found, missing




def reviewed(label: Label, decision: Decision | None, class_names: Sequence[str]) -> Label:
    """``label`` as a reviewer decided it (muses.collection.decisions): the reviewed class, or
    excluded for "not one of these". A class the definitions no longer have leaves the catalog's
    label standing rather than inventing a class."""
    if decision is None or (decision.value is not None and decision.value not in class_names):
        return label
    if decision.value is None:
        return label._replace(cls=None, status=EXCLUDED, keyword=None, field=REVIEWED, candidates=(),
                              vetoes=((REVIEWED, NOT_ONE),))
    return label._replace(cls=decision.value, status=LABELED, keyword=decision.action, field=REVIEWED,
                          candidates=(), vetoes=())


def decided_none(label: Label) -> bool:
    """Whether a reviewer decided the record is none of the classes (see :func:`reviewed`)."""
    return label.status == EXCLUDED and label.field == REVIEWED


def _labeler(store: Store, defs: Definitions) -> Callable[[dict[str, Any]], Label]:
    """record (``record_fields`` of an item) -> its label, as a reviewer decided it where one did."""
    matcher, decisions = Matcher(defs), current_decisions(store)
    return lambda record: reviewed(matcher.label(record), decisions.get(record["id"]), defs.class_names)


def _left_out(stream, defs: Definitions) -> LeftOut:
    return LeftOut(stream, searched_fields(defs), defs.conflict_policy)


def _label_store(project, store: Store, label_of: Callable[[dict[str, Any]], Label], tally: ReportTally, *, progress: bool,
                 keep: Sequence[str] = (), none_of_these: bool = False) -> _Labeled:
    """Every record labeled and tallied as the store streams by (batches of items, see
    ``Store.items``); of the records whose status is in ``keep`` and that have image files, only
    the class and the number of files are kept (the dataset is chosen from them), and with
    ``none_of_these`` the number of files of those a reviewer decided are none of the classes."""
    out = _Labeled(tally, {}, [])
    total = store.count_items()
    for item in progress_bar(store.items(), total=total, desc="labeling", unit="objects", disable=not progress):
        record = record_fields(item)
        label = label_of(record)
        tally.add(label, title=item.title or "", has_images=bool(item.usable_images), record=record)
        wanted_none = none_of_these and decided_none(label)
        if label.status != LABELED and label.status not in keep and not wanted_none:
            continue
        files, missing = _image_files(project, item)
        if label.status == LABELED:
            out.skipped += [{"item_id": item.id, "image": image, "reason": "ML-size copy missing; run `muses "
                             "generate-images`"} for image in missing]
        if files and wanted_none:
            out.none_of_these[item.id] = len(files)
        elif files and label.status in keep:
            out.candidates[item.id] = (label.cls, len(files))
    return out


def _dataset_rows(project, store: Store, label_of: Callable[[dict[str, Any]], Label], splits: dict[str, str],
                  class_of: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The manifest rows of the chosen items (in id order) and their titles: a second pass that
    reads only those items again, so the first needed to keep no more than a count per item."""
    per_item: dict[str, list[dict[str, Any]]] = {}
    titles = {}
    for item in store.items(splits):
        label, (files, _) = label_of(record_fields(item)), _image_files(project, item)
        titles[item.id] = item.title or ""
        per_item[item.id] = [{
            "item_id": item.id,
            "image": f"images/{_image_name(item.id, position, path.suffix.lower())}",
            "class": class_of[item.id],
            "split": splits[item.id],
            "keyword": label.keyword or "",
            "field": label.field or "",
            "_source": path,
        } for position, path in files]
    return [row for item_id in sorted(per_item) for row in per_item[item_id]], titles


def preview(project, *, definitions: str | os.PathLike | None = None, gold: str | os.PathLike | None = None,
            progress: bool = True, left_out: str | os.PathLike | None = None,
            report_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """The labeling report for the project's store, without writing a dataset; ``left_out``: a
    CSV file to write every conflicting, excluded and unlabeled record to; ``report_dir``: a
    folder to write ``report.html`` and ``report.json`` into (no photos needed)."""
    defs = load_definitions(definitions or project.definitions_path)
    store = Store.for_project(project)
    gold_labels = load_gold(gold) if gold else None
    try:
        with contextlib.ExitStack() as stack:
            sink = None
            if left_out is not None:
                sink = _left_out(stack.enter_context(Path(left_out).open("w", newline="", encoding="utf-8")), defs)
            tally = ReportTally(defs, gold=gold_labels, left_out=sink)
            labeled = _label_store(project, store, _labeler(store, defs), tally, progress=progress)
            report = labeled.tally.report(splits=SPLITS, skipped=labeled.skipped)
            if left_out is not None:
                report["left_out"] = str(left_out)
            if report_dir is not None:
                Path(report_dir).mkdir(parents=True, exist_ok=True)
                write_report(report, report_dir)
    except OSError as exc:
        where = exc.filename or left_out or report_dir
        raise RunFailed(f"cannot write {where}: {exc.strerror or exc}. Choose a folder you may write to.") from exc
    return report


def store_items(project):
    """The project's store items, streamed in batches (for the field views of muses.labeling)."""
    return Store.for_project(project).items()


def field_values(project, field: str, *, definitions: str | os.PathLike | None = None, contains: str = "",
                 sort: str = "count"):
    """:func:`muses.labeling.values.field_values` of the project's store with its definitions."""
    from muses.labeling import values

    defs = load_definitions(definitions or project.definitions_path)
    return defs, values.field_values(store_items(project), field, defs, contains=contains, sort=sort)


def compare_with_catalog(project, field: str, *, definitions: str | os.PathLike | None = None) -> dict[str, Any]:
    """:func:`muses.labeling.compare.compare` of the project's store with its definitions."""
    from muses.labeling.compare import compare

    defs = load_definitions(definitions or project.definitions_path)
    return compare(store_items(project), field, defs)


def _count_other(report: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """The ``other`` class in the report (the labeling report knows only the defined classes)."""
    mine = [row for row in rows if row["class"] == OTHER]
    report["other"] = {
        "items": {split: len({r["item_id"] for r in mine if r["split"] == split}) for split in SPLITS},
        "images": {split: sum(r["split"] == split for r in mine) for split in SPLITS},
        "reviewed": len({r["item_id"] for r in mine if r["field"] == REVIEWED}),  # decided "none of these"
    }
    report["summary"]["dataset_items"] += len({r["item_id"] for r in mine})
    report["summary"]["dataset_images"] += len(mine)


class NaiveExporter:
    """Keyword ("naive") labels from the catalog.

    definitions: definitions.toml (default: the project's). max_images: at most this many
    images per class, whole items chosen at random (default: all). seed: sampling and split
    seed. split: train,val,test fractions. min_items: a class with fewer usable items is an
    error. gold: a hand-checked ``id,class`` CSV; adds precision to the report. other: add a
    class ``other`` of records whose catalog type matched no class (at most as many images as
    the largest class), so that the model can answer "none of these".
    """

    name = "naive"

    def __init__(
        self,
        *,
        definitions: str | os.PathLike | None = None,
        max_images: int | None = None,
        seed: int = 0,
        split: str | Sequence[float] = DEFAULT_SPLIT,
        min_items: int = 10,
        gold: str | os.PathLike | None = None,
        progress: bool = True,
        other: bool = True,
    ):
        if max_images is not None and max_images < 1:
            raise SplitError(f"max_images = {max_images}; give a positive number, or leave it out for all images")
        if min_items < 1:
            raise SplitError(f"min_items = {min_items}; give a positive number")
        self.definitions = definitions
        self.max_images = max_images
        self.seed = int(seed)
        self.split = parse_split(split)
        self.min_items = max(min_items, min_items_for(self.split))
        self.gold = gold
        self.progress = progress
        self.other = other

    def export(self, project, out: str | os.PathLike | None = None) -> ExportResult:
        """Write the dataset folder (default ``datasets/naive`` in the project; a relative ``out``
        is taken from the project folder too); returns its path and report. Nothing is replaced
        unless the whole new dataset was written."""
        defs = load_definitions(self.definitions or project.definitions_path)
        gold = load_gold(self.gold) if self.gold else None
        out = project.path(out) if out else project.datasets_dir / self.name
        store = Store.for_project(project)  # a store that cannot be used says so before anything is written
        try:
            with _staging(out) as tmp:
                report, warnings = self._export_into(tmp, project, store, defs, gold)
                _publish(tmp, out)
        except OSError as exc:
            raise RunFailed(
                f"cannot write the dataset folder {out}: {exc.strerror or exc}"
                f"{f' ({exc.filename})' if exc.filename else ''}. Free some disk space or make the folder "
                "writable, then run the export again; any earlier dataset there is unchanged."
            ) from exc
        return ExportResult(path=out, report=report, warnings=warnings)

    def _export_into(self, tmp: Path, project, store: Store, defs: Definitions,
                     gold: dict[str, str] | None) -> tuple[dict[str, Any], list[str]]:
        """The dataset written into ``tmp``; its report and warnings."""
        label_of = _labeler(store, defs)
        keep = (LABELED, UNLABELED) if self.other else (LABELED,)
        with (tmp / LEFT_OUT).open("w", newline="", encoding="utf-8") as fh:
            tally = ReportTally(defs, gold=gold, left_out=_left_out(fh, defs))
            labeled = _label_store(project, store, label_of, tally, progress=self.progress, keep=keep,
                                   none_of_these=self.other)
        candidates = labeled.candidates

        by_class: dict[str, dict[str, int]] = {name: {} for name in defs.class_names}
        for item_id, (cls, n_files) in candidates.items():
            if cls is not None:
                by_class[cls][item_id] = n_files
        warnings = self._check_counts(by_class)
        kept = sample_per_class(by_class, self.max_images, self.seed)
        kept.update(self._other_class(defs, labeled, by_class, kept, warnings))
        splits = stratified_split(kept, self.split, self.seed)
        class_of = {item_id: cls for cls, ids in kept.items() for item_id in ids}
        rows, titles = _dataset_rows(project, store, label_of, splits, class_of)
        report = labeled.tally.report(splits=SPLITS, rows=rows, titles=titles, skipped=labeled.skipped,
                                      warnings=warnings)
        report["left_out"] = LEFT_OUT
        if OTHER in kept:
            _count_other(report, rows)
        meta = {
            "classes": [*defs.class_names, *([OTHER] if OTHER in kept else [])],
            "definitions_digest": defs.digest,
            "seed": self.seed,
            "split": list(self.split),
            "exporter": self.name,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        self._fill(tmp, rows, meta, report)
        return report, warnings

    def _other_class(self, defs: Definitions, labeled: _Labeled, by_class, kept,
                     warnings: list[str]) -> dict[str, list[str]]:
        """``{"other": items}``: every record with images a reviewer decided is none of the classes,
        and unlabeled records with images, these capped at the largest class's images (none without
        ``other``, when a defined class is called so, or when too few records are left).

        A reviewer's "none of these" is the surest example of the class there is: an unlabeled
        record may be a bust no keyword named, a decided one is not. On the quality bench the
        training folds' hand-checked objects as decisions raised the "none of these" answers for
        objects of no class from 0.565 to 0.609 (3 seeds), refusing more known photos (0.081 to
        0.120); docs/quality.md."""
        if not self.other:
            return {}
        if OTHER in defs.class_names:
            warnings.append(f"no extra {OTHER!r} class: the definitions already have a class of that name")
            return {}
        pool = {item_id: n_files for item_id, (cls, n_files) in labeled.candidates.items() if cls is None}
        if len(pool) + len(labeled.none_of_these) < self.min_items:
            warnings.append(f"no {OTHER!r} class (\"none of these\"): only {len(pool) + len(labeled.none_of_these)} "
                            f"records with photos match no class, {self.min_items} needed")
            return {}
        largest = max(sum(by_class[cls][i] for i in ids) for cls, ids in kept.items())
        return {OTHER: sorted([*labeled.none_of_these, *sample_per_class({OTHER: pool}, largest, self.seed)[OTHER]])}

    def _check_counts(self, by_class: dict[str, dict[str, int]]) -> list[str]:
        few = {cls: len(items) for cls, items in by_class.items() if len(items) < self.min_items}
        if few:
            listed = ", ".join(f"{cls!r} has {n}" for cls, n in few.items())
            raise SplitError(
                f"too few labeled items with usable images: {listed} (need at least {self.min_items}). "
                "Add synonyms to the class in definitions.toml, remove the class, have more photos checked (only "
                "checked photos count; `muses stats` says what the others wait for), or lower --min-items."
            )
        warnings = []
        for cls, items in by_class.items():
            n = len(items) if self.max_images is None else min(len(items), self.max_images)
            n_test = split_counts(n, self.split)[2]
            if 0 < n_test < FEW_TEST_ITEMS:
                warnings.append(f"class {cls!r} gets only {n_test} test item(s); its test metrics will be noisy")
        return warnings

    def _fill(self, tmp: Path, rows: list[dict[str, Any]], meta: dict[str, Any], report: dict[str, Any]) -> None:
        (tmp / "images").mkdir()
        for row in progress_bar(rows, desc="copying images", unit="photos", disable=not self.progress):
            shutil.copyfile(row["_source"], tmp / row["image"])
        csvfile.write(tmp / "manifest.csv", rows, MANIFEST_COLUMNS)
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_report(report, tmp)


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A temporary sibling of ``out`` that everything is written into first (removed if anything
    fails), so an interrupted export never leaves a half dataset that looks complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(tmp: Path, out: Path) -> None:
    """One rename makes the finished dataset visible in place of the old one."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:  # what is left if this fails goes with the next export's clean-up
        shutil.rmtree(old, ignore_errors=True)
