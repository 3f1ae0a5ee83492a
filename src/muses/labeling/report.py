"""The labeling report: coverage, per-class counts per split, per-keyword statistics (in the
spirit of Snorkel's labeling-function summary), conflicts, and precision against a gold file."""
from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from muses.labeling.matching import CONFLICT, EXCLUDED, LABELED, UNLABELED, Label, field_text, searched_fields
from muses.labeling.definitions import Definitions
from muses.csvfile import Writer
from muses.labeling.text import fold
from muses.errors import MusesError

N_EXAMPLES = 10  # conflict and unlabeled examples shown in the table and the HTML page
N_PHOTOS = 4  # example photos per keyword
N_LISTED = 200  # conflicting, excluded and unlabeled records listed in the report (all are in left-out.csv)
N_WORDS = 3  # example records per keyword and outcome, with the matched words in context
CONTEXT = 40  # characters shown either side of a matched word
# What a keyword's hit came to on one record; every hit is exactly one of these, so they add up.
OUTCOMES = ("decided", "agreed", "overridden", "conflicts", "vetoed")
EXPLAIN = {
    "decided": "the keyword gave the record its class",
    "agreed": "the record got the keyword's class, decided by another keyword of that class",
    "overridden": "another class won (found earlier, or in a higher-ranked field)",
    "conflicts": "the record was left out: another class was found at the same rank and place",
    "vetoed": "a keyword hit whose class an exclude word of the same class vetoed on that record "
              "(the record may still get another class)",
    "excluded": "a record left out because every class found in it was vetoed by its own exclude words",
    "unlabeled": "a record in which no keyword of any class was found (\"none of these\")",
}


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


REVIEWED = "review"  # Label.field of a record a reviewer decided; the "class" their "none of these" vetoes


def snippet(text: str, start: int, end: int, width: int = CONTEXT) -> dict[str, str]:
    """The matched words of ``text`` (``start``/``end`` in its folded form) with ``width``
    characters of context: ``before``, ``match``, ``after``. Shown in the catalog's spelling
    unless folding changed the text's length (then the positions hold only for the folded form)."""
    folded = fold(text)
    shown = text if len(folded) == len(text) else folded
    a, b = max(0, start - width), min(len(shown), end + width)
    return {"before": ("…" if a else "") + shown[a:start], "match": shown[start:end],
            "after": shown[end:b] + ("…" if b < len(shown) else "")}


def _quoted(words: Iterable[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)


def explain(label: Label, policy: str) -> tuple[list[str], str]:
    """The classes a left-out record involves and why it was left out, in one line."""
    vetoes: dict[str, list[str]] = defaultdict(list)
    for cls, word in label.vetoes:
        vetoes[cls].append(word)
    found: dict[str, list[str]] = defaultdict(list)
    for h in label.hits:
        if h.keyword not in found[h.cls]:
            found[h.cls].append(h.keyword)
    if label.status == CONFLICT:
        where = "at the same place" if policy == "earliest" else f"at the same rank (policy {policy})"
        return list(label.candidates), "conflict: " + " and ".join(
            f"{c} ({_quoted(found[c])})" for c in label.candidates) + f" found {where}"
    # An exclude word on a record its class never matched vetoes nothing: named apart.
    idle = "; ".join(f"{c} {_quoted(words)}" for c, words in vetoes.items() if c not in found and c != REVIEWED)
    idle = f"; exclude words found, vetoing nothing: {idle}" if idle else ""
    if label.status == EXCLUDED:
        if REVIEWED in vetoes:
            return [], ("excluded: a reviewer decided it is none of these classes (where the dataset has the "
                        "class 'other', it teaches \"none of these\")")
        hit = [c for c in vetoes if c in found]
        return hit, "excluded: " + "; ".join(f"{c} ({_quoted(found[c])}) vetoed by {_quoted(vetoes[c])}"
                                             for c in hit) + idle
    return [], "unlabeled: no keyword of any class found" + idle


LEFT_OUT_COLUMNS = ("id", "status", "reason", "classes", "exclude_words", "title")


class LeftOut:
    """``left-out.csv``: every record the labels leave out (conflicting, excluded, unlabeled)
    with the reason and the text of every searched field, written as the records stream by, so
    a curator gets the whole list whatever the collection's size and nothing of it is held in
    memory. ``fields``: the searched fields (columns after the title)."""

    def __init__(self, stream: TextIO, fields: Sequence[str] = (), policy: str = "earliest"):
        self._fields = [f for f in fields if f != "title"]
        self._policy = policy
        self._writer = Writer(stream, (*LEFT_OUT_COLUMNS, *self._fields))

    def add(self, label: Label, title: str, record: Mapping[str, Any] | None = None) -> None:
        if label.status == LABELED:
            return
        classes, reason = explain(label, self._policy)
        words = sorted({f"{cls}: {word}" for cls, word in label.vetoes})
        texts = [field_text(record, f) if record else "" for f in self._fields]
        self._writer.row((label.item_id, label.status, reason, "; ".join(classes), "; ".join(words), title, *texts))


class _Spread:
    """Up to ``n`` items spread evenly over a stream of unknown length, holding at most 2n: every
    ``step``-th is kept, and when 2n are kept every other one goes and the step doubles."""

    def __init__(self, n: int):
        self.n, self.step, self.seen, self.kept = n, 1, 0, []

    def add(self, make: Callable[[], Any]) -> None:
        """Count one more item; ``make()`` builds it only when it is kept."""
        if self.seen % self.step == 0:
            self.kept.append(make())
            if len(self.kept) > 2 * self.n:
                self.kept, self.step = self.kept[::2], self.step * 2
        self.seen += 1

    def sample(self) -> list[Any]:
        k = len(self.kept)
        return self.kept if k <= self.n else [self.kept[i * k // self.n] for i in range(self.n)]


class ReportTally:
    """The labeling report gathered one record at a time: counts, and a bounded number of
    examples and listed records (:data:`N_LISTED`), so its size does not grow with the
    collection. ``left_out`` gets every conflicting, excluded and unlabeled record."""

    def __init__(self, definitions: Definitions, *, gold: Mapping[str, str] | None = None,
                 left_out: LeftOut | None = None):
        self.definitions = definitions
        self.gold = gold
        self.left_out = left_out
        self.status: Counter[str] = Counter()
        self.items_with_images = 0
        self.labeled: Counter[str] = Counter()  # per class
        self.labeled_with_images: Counter[str] = Counter()
        self.gold_checked: Counter[str] = Counter()  # per class: labels the gold file checks
        self.gold_correct: Counter[str] = Counter()  # ... and finds right (recall's numerator too)
        self.keywords = {(cls, kw): Counter() for cls, spec in definitions.synonyms_extended.items()
                         for kw in spec["synonyms"]}
        self.fields = searched_fields(definitions)
        # (class, keyword) -> outcome -> the first N_WORDS records, with the matched words in context
        self.words: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(dict)
        self.conflicts: list[dict[str, Any]] = []  # the first N_LISTED of each kind
        self.excluded: list[dict[str, Any]] = []
        self.unlabeled: list[str] = []
        self.unlabeled_examples = _Spread(N_EXAMPLES)

    def add(self, label: Label, *, title: str = "", has_images: bool = False,
            record: Mapping[str, Any] | None = None) -> None:
        """Count one record's label; ``record`` (the fields matching read, see ``record_fields``)
        lets the report show the matched words and the text of left-out records."""
        self.status[label.status] += 1
        self.items_with_images += has_images
        if self.left_out is not None:
            self.left_out.add(label, title, record)
        if label.status == LABELED:
            self._add_labeled(label, has_images)
        elif label.status == CONFLICT and len(self.conflicts) < N_LISTED:
            self.conflicts.append({"id": label.item_id, "title": title, "classes": list(label.candidates),
                                   "reason": explain(label, self.definitions.conflict_policy)[1],
                                   **self._texts(record)})
        elif label.status == EXCLUDED and len(self.excluded) < N_LISTED:
            words: dict[str, list[str]] = defaultdict(list)
            for cls, word in sorted(set(label.vetoes)):
                words[cls].append(word)
            self.excluded.append({"id": label.item_id, "title": title, "excluded": dict(words),
                                  "reason": explain(label, self.definitions.conflict_policy)[1],
                                  **self._texts(record)})
        elif label.status == UNLABELED:
            if len(self.unlabeled) < N_LISTED:
                self.unlabeled.append(label.item_id)
            self.unlabeled_examples.add(lambda: {"id": label.item_id, "title": title, **self._texts(record)})
        self._add_keywords(label, record)

    def _texts(self, record: Mapping[str, Any] | None) -> dict[str, Any]:
        """``{"texts": {field: text}}`` of the searched fields that are not empty (none without a record)."""
        if record is None:
            return {}
        return {"texts": {f: t for f in self.fields if (t := field_text(record, f))}}

    def _add_labeled(self, label: Label, has_images: bool) -> None:
        self.labeled[label.cls] += 1
        self.labeled_with_images[label.cls] += has_images
        if self.gold is not None and label.item_id in self.gold:
            self.gold_checked[label.cls] += 1
            self.gold_correct[label.cls] += self.gold[label.item_id] == label.cls

    def _add_keywords(self, label: Label, record: Mapping[str, Any] | None) -> None:
        if not label.hits:
            return
        first: dict[tuple[str, str], Any] = {}  # each (class, keyword) once, at its first hit
        for hit in label.hits:
            first.setdefault((hit.cls, hit.keyword), hit)
        overlap = len({cls for cls, _ in first}) > 1
        vetoed = {cls for cls, _ in label.vetoes}
        for key, hit in first.items():
            stats = self.keywords[key]
            stats["hits"] += 1
            stats["overlaps"] += overlap
            outcome = self._outcome(label, hit.cls, hit.keyword, vetoed)
            stats[outcome] += 1
            examples = self.words[key].get(outcome, ())
            if record is not None and len(examples) < N_WORDS:
                self.words[key].setdefault(outcome, []).append({
                    "id": label.item_id, "field": hit.field, "note": self._note(label, hit.cls, outcome),
                    **snippet(field_text(record, hit.field), hit.start, hit.end)})
        if label.status == LABELED and (label.cls, label.keyword) in self.keywords:  # not a reviewer's decision
            stats = self.keywords[(label.cls, label.keyword)]
            if self.gold is not None and label.item_id in self.gold:
                stats["gold_checked"] += 1
                stats["gold_correct"] += self.gold[label.item_id] == label.cls

    @staticmethod
    def _outcome(label: Label, cls: str, keyword: str, vetoed: set[str]) -> str:
        """Which of :data:`OUTCOMES` a hit of (cls, keyword) came to."""
        if cls in vetoed:
            return "vetoed"
        if label.status == LABELED:
            if label.cls == cls:
                return "decided" if label.keyword == keyword else "agreed"
            return "overridden"
        return "conflicts" if label.status == CONFLICT and cls in label.candidates else "overridden"

    @staticmethod
    def _note(label: Label, cls: str, outcome: str) -> str:
        """With whom or what a hit of ``cls`` came to ``outcome``, for the examples."""
        if outcome == "vetoed":
            return "by the exclude " + _quoted(w for c, w in label.vetoes if c == cls)
        if outcome == "agreed":
            return f"decided by '{label.keyword}'"
        if outcome == "conflicts":
            return "with " + ", ".join(c for c in label.candidates if c != cls)
        if outcome == "overridden":
            if label.status != LABELED:
                return "outranked by " + ", ".join(label.candidates)
            return f"{label.cls} won by '{label.keyword}'" if label.keyword else f"{label.cls} won"
        return ""

    def report(
        self,
        *,
        splits: Sequence[str] = (),
        rows: Iterable[Mapping[str, str]] = (),
        titles: Mapping[str, str] | None = None,
        skipped: Sequence[Mapping[str, str]] = (),
        warnings: Sequence[str] = (),
    ) -> dict[str, Any]:
        """All the report's numbers as plain JSON-ready data; ``rows`` are the manifest rows,
        ``titles`` their items' titles and ``splits`` the dataset's split names (labeling knows
        nothing of datasets, so they are given)."""
        rows = list(rows)
        split_items: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        split_images: dict[str, Counter] = defaultdict(Counter)
        for row in rows:
            split_items[row["class"]][row["split"]].add(row["item_id"])
            split_images[row["class"]][row["split"]] += 1
        classes = [self._class_entry(cls_id, name, splits, split_items[name], split_images[name])
                   for cls_id, name in self.definitions.classes.items()]
        n_items, status = sum(self.status.values()), self.status
        report: dict[str, Any] = {
            "definitions": str(self.definitions.path) if self.definitions.path else None,
            "definitions_digest": self.definitions.digest,
            "conflict_policy": self.definitions.conflict_policy,
            "splits": list(splits),
            "summary": {
                "items": n_items,
                "items_with_images": self.items_with_images,
                "labeled": status[LABELED],
                "labeled_with_images": sum(self.labeled_with_images.values()),
                "conflicts": status[CONFLICT],
                "excluded": status[EXCLUDED],
                "unlabeled": status[UNLABELED],
                "coverage": round(status[LABELED] / n_items, 4) if n_items else 0.0,
                "dataset_items": sum(sum(c["items"].values()) for c in classes),
                "dataset_images": sum(sum(c["images"].values()) for c in classes),
                "skipped_images": len(skipped),
            },
            "classes": classes,
            "keywords": self._keyword_rows(),
            "listed": N_LISTED,
            "conflict_examples": self.conflicts[:N_EXAMPLES],
            "conflicts": {c["id"]: c["classes"] for c in self.conflicts},
            "excluded": {x["id"]: sorted(f"{c}: {w}" for c, words in x["excluded"].items() for w in words)
                         for x in self.excluded},
            "excluded_records": self.excluded,
            "keyword_examples": keyword_examples(rows, titles or {}),
            "keyword_words": [{"class": cls, "keyword": kw, "outcomes": self.words[(cls, kw)]}
                              for cls, kw in self.keywords if self.words.get((cls, kw))],
            "explain": EXPLAIN,
            "searched_fields": self.fields,
            "unlabeled_examples": self.unlabeled_examples.sample(),  # spread over the collection
            "unlabeled": self.unlabeled,
            "skipped_images": list(skipped),
            "warnings": list(warnings),
        }
        if self.gold is not None:
            checked = sum(self.gold_checked.values())
            report["summary"]["gold_checked"] = checked
            report["summary"]["precision"] = _precision(sum(self.gold_correct.values()), checked)
        return report

    def _class_entry(self, cls_id: Any, name: str, splits: Sequence[str], items: Mapping[str, set[str]],
                     images: Mapping[str, int]) -> dict[str, Any]:
        entry = {
            "id": cls_id,
            "name": name,
            "labeled": self.labeled[name],
            "labeled_with_images": self.labeled_with_images[name],
            "items": {s: len(items[s]) for s in splits},
            "images": {s: images[s] for s in splits},
        }
        if self.gold is not None:
            entry["gold_checked"] = self.gold_checked[name]
            entry["precision"] = _precision(self.gold_correct[name], self.gold_checked[name])
            entry["recall"] = _precision(self.gold_correct[name], sum(1 for g in self.gold.values() if g == name))
        return entry

    def _keyword_rows(self) -> list[dict[str, Any]]:
        out = []
        for (cls, kw), stats in self.keywords.items():
            row = {"class": cls, "keyword": kw}
            row.update({k: stats[k] for k in ("hits", *OUTCOMES, "overlaps")})
            if self.gold is not None:
                row["gold_checked"] = stats["gold_checked"]
                row["precision"] = _precision(stats["gold_correct"], stats["gold_checked"])
            out.append(row)
        return out


def build_report(labels: Iterable[Label], definitions: Definitions, *, titles: Mapping[str, str],
                 with_images: Iterable[str], gold: Mapping[str, str] | None = None, **details: Any) -> dict[str, Any]:
    """:meth:`ReportTally.report` of labels already in hand (``details``: its keyword arguments)."""
    tally = ReportTally(definitions, gold=gold)
    with_images = set(with_images)
    for label in labels:
        tally.add(label, title=titles.get(label.item_id, ""), has_images=label.item_id in with_images)
    return tally.report(titles=titles, **details)


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
