"""The labeling report: coverage, per-class counts per split, per-keyword statistics (in the
spirit of Snorkel's labeling-function summary), conflicts, and precision against a gold file."""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from muses.labeling.matching import CONFLICT, EXCLUDED, LABELED, UNLABELED, Label
from muses.labeling.definitions import Definitions
from muses.errors import MusesError

N_EXAMPLES = 10  # conflict examples shown in the table and the HTML page
N_PHOTOS = 4  # example photos per keyword


class GoldError(MusesError):
    """The gold file is unreadable or not a CSV with columns id,class."""


def load_gold(path: str | Path) -> dict[str, str]:
    """A hand-checked ``id,class`` CSV → ``{item_id: class}``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"id", "class"} <= set(reader.fieldnames):
                raise GoldError(f"{path}: needs a header line with columns id,class (found {reader.fieldnames})")
            gold = {}
            for line, row in enumerate(reader, start=2):
                item_id, cls = (row.get("id") or "").strip(), (row.get("class") or "").strip()
                if not item_id or not cls:
                    raise GoldError(f"{path}, line {line}: empty id or class; fill it in or delete the line")
                gold[item_id] = cls
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"{path}: cannot read the gold file ({exc})") from exc
    return gold


def _precision(correct: int, total: int) -> float | None:
    return round(correct / total, 4) if total else None


def build_report(
    labels: Sequence[Label],
    definitions: Definitions,
    *,
    splits: Sequence[str] = (),
    titles: Mapping[str, str],
    with_images: Iterable[str],
    rows: Iterable[Mapping[str, str]] = (),
    skipped: Sequence[Mapping[str, str]] = (),
    warnings: Sequence[str] = (),
    gold: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """All the report's numbers as plain JSON-ready data; ``rows`` are the manifest rows and
    ``splits`` the dataset's split names (labeling knows nothing of datasets, so they are given)."""
    with_images = set(with_images)
    status = Counter(label.status for label in labels)
    labeled = [label for label in labels if label.status == LABELED]

    split_items: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    split_images: dict[str, Counter] = defaultdict(Counter)
    for row in rows:
        split_items[row["class"]][row["split"]].add(row["item_id"])
        split_images[row["class"]][row["split"]] += 1

    labeled_by_class: dict[str, list[Label]] = defaultdict(list)
    for label in labeled:
        labeled_by_class[label.cls].append(label)
    classes = []
    for cls_id, name in definitions.classes.items():
        mine = labeled_by_class[name]
        entry = {
            "id": cls_id,
            "name": name,
            "labeled": len(mine),
            "labeled_with_images": sum(1 for label in mine if label.item_id in with_images),
            "items": {s: len(split_items[name][s]) for s in splits},
            "images": {s: split_images[name][s] for s in splits},
        }
        if gold is not None:
            checked = [label for label in mine if label.item_id in gold]
            truly = {i for i, g in gold.items() if g == name}
            found = sum(1 for label in mine if label.item_id in truly)
            entry["gold_checked"] = len(checked)
            entry["precision"] = _precision(sum(gold[label.item_id] == name for label in checked), len(checked))
            entry["recall"] = _precision(found, len(truly))
        classes.append(entry)

    keywords = {(cls, kw): Counter() for cls, spec in definitions.synonyms_extended.items() for kw in spec["synonyms"]}
    for label in labels:
        hit_classes = {h.cls for h in label.hits}
        vetoed = {cls for cls, _ in label.vetoes}
        for cls, kw in {(h.cls, h.keyword) for h in label.hits}:
            stats = keywords[(cls, kw)]
            stats["hits"] += 1
            stats["overlaps"] += len(hit_classes) > 1
            stats["conflicts"] += label.status == CONFLICT and cls in label.candidates
            stats["vetoed"] += cls in vetoed
            stats["overridden"] += label.status == LABELED and label.cls != cls and cls not in vetoed
        if label.status == LABELED and (label.cls, label.keyword) in keywords:  # not a reviewer's decision
            stats = keywords[(label.cls, label.keyword)]
            stats["decided"] += 1
            if gold is not None and label.item_id in gold:
                stats["gold_checked"] += 1
                stats["gold_correct"] += gold[label.item_id] == label.cls
    keyword_rows = []
    for (cls, kw), stats in keywords.items():
        row = {"class": cls, "keyword": kw}
        row.update({k: stats[k] for k in ("hits", "decided", "overlaps", "overridden", "conflicts", "vetoed")})
        if gold is not None:
            row["gold_checked"] = stats["gold_checked"]
            row["precision"] = _precision(stats["gold_correct"], stats["gold_checked"])
        keyword_rows.append(row)

    conflicts = [label for label in labels if label.status == CONFLICT]
    unlabeled = [label.item_id for label in labels if label.status == UNLABELED]
    n_items = len(labels)
    report: dict[str, Any] = {
        "definitions": str(definitions.path) if definitions.path else None,
        "definitions_digest": definitions.digest,
        "conflict_policy": definitions.conflict_policy,
        "splits": list(splits),
        "summary": {
            "items": n_items,
            "items_with_images": len(with_images),
            "labeled": status[LABELED],
            "labeled_with_images": sum(1 for label in labeled if label.item_id in with_images),
            "conflicts": status[CONFLICT],
            "excluded": status[EXCLUDED],
            "unlabeled": status[UNLABELED],
            "coverage": round(status[LABELED] / n_items, 4) if n_items else 0.0,
            "dataset_items": sum(sum(c["items"].values()) for c in classes),
            "dataset_images": sum(sum(c["images"].values()) for c in classes),
            "skipped_images": len(skipped),
        },
        "classes": classes,
        "keywords": keyword_rows,
        "conflict_examples": [
            {"id": label.item_id, "title": titles.get(label.item_id, ""), "classes": list(label.candidates)}
            for label in conflicts[:N_EXAMPLES]
        ],
        "conflicts": {label.item_id: list(label.candidates) for label in conflicts},
        "excluded": {
            label.item_id: sorted({f"{c}: {kw}" for c, kw in label.vetoes})
            for label in labels
            if label.status == EXCLUDED
        },
        "excluded_records": excluded_records(labels, titles),
        "keyword_examples": keyword_examples(rows, titles),
        "unlabeled_examples": [  # spread over the collection, not just its first ids
            {"id": item_id, "title": titles.get(item_id, "")}
            for item_id in unlabeled[:: max(1, len(unlabeled) // N_EXAMPLES)][:N_EXAMPLES]
        ],
        "unlabeled": unlabeled,
        "skipped_images": list(skipped),
        "warnings": list(warnings),
    }
    if gold is not None:
        checked = [label for label in labeled if label.item_id in gold]
        report["summary"]["gold_checked"] = len(checked)
        report["summary"]["precision"] = _precision(sum(gold[l.item_id] == l.cls for l in checked), len(checked))
    return report


def excluded_records(labels: Iterable[Label], titles: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every record an exclude word kept out: object number, title, and per class the words."""
    out = []
    for label in labels:
        if label.status == EXCLUDED:
            words: dict[str, list[str]] = defaultdict(list)
            for cls, word in sorted(set(label.vetoes)):
                words[cls].append(word)
            out.append({"id": label.item_id, "title": titles.get(label.item_id, ""), "excluded": dict(words)})
    return out


def keyword_examples(rows: Iterable[Mapping[str, str]], titles: Mapping[str, str], *,
                     per_keyword: int = N_PHOTOS) -> list[dict[str, Any]]:
    """A few photos of the dataset per (class, keyword) that decided them, one per object, so a
    curator sees at a glance what each word brought in; ``image`` is relative to the dataset folder."""
    examples: dict[tuple[str, str], dict[str, dict[str, str]]] = defaultdict(dict)
    for row in rows:
        photos = examples[(row["class"], row["keyword"])]
        if row["item_id"] not in photos and len(photos) < per_keyword:
            photos[row["item_id"]] = {"id": row["item_id"], "title": titles.get(row["item_id"], ""), "image": row["image"]}
    return [{"class": cls, "keyword": kw, "photos": list(photos.values())}
            for (cls, kw), photos in sorted(examples.items())]


def write_report(report: Mapping[str, Any], folder: str | Path) -> None:
    """``report.json`` and ``report.html`` in ``folder``."""
    from jinja2 import Environment

    folder = Path(folder)
    (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    source = (resources.files("muses.labeling") / "report.html.j2").read_text(encoding="utf-8")
    template = Environment(autoescape=True).from_string(source)
    (folder / "report.html").write_text(template.render(r=report, splits=report["splits"]), encoding="utf-8")
