"""Pictures and pages a person looks at: the confusion-matrix PNG, HTML galleries, CSV lists.

Galleries embed small JPEG thumbnails, so a page stays readable when it is mailed or moved
away from the images.
"""
from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment
from matplotlib.figure import Figure

from muses import csvfile
from muses.imaging import try_open
from muses.predictions import exported_name, shown_name

THUMBNAIL_SIZE = 160

# (caption, headers, rows): a small table shown above the gallery.
Table = tuple[str, Sequence[str], Sequence[Sequence[Any]]]

_GALLERY = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.summary { border-collapse: collapse; margin: 0.5em 0 1.5em; }
table.summary td, table.summary th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
.card { width: 200px; border: 1px solid #ddd; border-radius: 6px; padding: 0.5em; font-size: 0.85em; }
.card img { display: block; max-width: 100%; margin: 0 auto 0.4em; }
.card .object-number { font-weight: 600; margin: 0 0 0.3em; }
.card dt { color: #666; } .card dd { margin: 0 0 0.3em 0; overflow-wrap: anywhere; }
.missing { height: 100px; background: #eee; color: #888; display: flex; align-items: center; justify-content: center; }
</style></head><body>
<h1>{{ title }}</h1>
{% for note in notes %}<p>{{ note }}</p>{% endfor %}
{% for caption, headers, rows in tables %}
<table class="summary"><caption>{{ caption }}</caption>
<tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endfor %}
{% if not cards %}<p class="empty">Nothing to show.</p>{% endif %}
<div class="grid">
{% for card in cards %}
<div class="card" data-id="{{ card.id }}">
{% if card.thumbnail %}<img src="data:image/jpeg;base64,{{ card.thumbnail }}" alt="{{ card.id }}">
{% else %}<div class="missing">image unreadable</div>{% endif %}
<p class="object-number">{{ card.id }}</p>
<dl>{% for label, value in card.fields %}<dt>{{ label }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>
</div>
{% endfor %}
</div>
</body></html>
""")


def plot_confusion_matrix(confusion: np.ndarray, class_names: Sequence[str], path: str | Path, *, title: str = "") -> Path:
    """Two panels: counts, and rows normalized to 1 (recall on the diagonal); class names on both axes."""
    confusion = np.asarray(confusion)
    n = len(class_names)
    if confusion.shape != (n, n):
        raise ValueError(f"confusion must be {n}x{n} for {n} class names, got {confusion.shape}")
    totals = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, totals, out=np.zeros(confusion.shape, dtype=float), where=totals > 0)
    side = max(4.0, 0.55 * n + 2.5)
    # A bare Figure, not pyplot: no global backend or figure state, safe in threads and servers.
    fig = Figure(figsize=(2 * side + 1, side))
    axes = fig.subplots(1, 2)
    for ax, values, label, fmt in ((axes[0], confusion, "counts", "d"), (axes[1], normalized, "row-normalized", ".2f")):
        image = ax.imshow(values, cmap="Blues", vmin=0, vmax=values.max() or 1)
        ax.set_xticks(range(n), class_names, rotation=45, ha="right")
        ax.set_yticks(range(n), class_names)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("catalog (naive) class")
        ax.set_title(label)
        threshold = (values.max() or 1) / 2
        for t in range(n):
            for p in range(n):
                ax.text(p, t, format(values[t, p], fmt), ha="center", va="center", fontsize=8,
                        color="white" if values[t, p] > threshold else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path


def thumbnail(path: str | Path, size: int = THUMBNAIL_SIZE) -> str | None:
    """A base64 JPEG thumbnail, or None when the file is missing or cannot be decoded."""
    img = try_open(path, size)
    if isinstance(img, str):
        return None
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_gallery(
    path: str | Path,
    title: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    notes: Sequence[str] = (),
    tables: Sequence[Table] = (),
) -> Path:
    """An HTML page with one card per row: the thumbnail of ``row["image"]`` and ``columns``.

    ``row["id"]`` is written as the card's ``data-id``; floats are shown with 3 decimals and
    column names with spaces for underscores.
    """
    cards = [
        {
            "id": row.get("id", ""),
            "thumbnail": thumbnail(row["image"]),
            "fields": [(col.replace("_", " "), f"{row[col]:.3f}" if isinstance(row.get(col), float) else row.get(col, ""))
                       for col in columns],
        }
        for row in rows
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_GALLERY.render(title=title, notes=notes, tables=tables, cards=cards), encoding="utf-8")
    return path


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """A CSV with a header line of ``columns`` (other keys of the rows are left out); floats
    rounded to 4 decimals."""
    return csvfile.write(path, ({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows),
                         columns)


def catalog_entry(item) -> dict[str, str]:
    """What a reviewer reads of a store Item: title and object type (facets joined by " / ")."""
    return {"title": item.title, "object_type": " / ".join(item.object_type or [])}


def catalog_fields(store, ids) -> dict[str, dict[str, str]]:
    """:func:`catalog_entry` of the items of ``ids`` found in the store, by id."""
    return {item.id: catalog_entry(item) for item in store.items(ids)}


MISTAKE_COLUMNS = ["id", "title", "object_type", "naive_label", "predicted", "probability", "p_naive_label"]


def write_evaluation(
    out_dir: str | Path,
    prefix: str,
    predictions,
    evaluation,
    class_names: Sequence[str],
    catalog: Mapping[str, Mapping[str, str]],
    *,
    top_k: int = 50,
) -> dict[str, Path]:
    """The confusion-matrix PNG, the reliability diagram PNG and the gallery of the ``top_k``
    most confident mistakes (with the most-confused pairs above it); returns
    ``{"confusion": path, "reliability": path, "mistakes": path}``."""
    from muses.analysis.calibration import plot_reliability, reliability
    from muses.analysis.metrics import most_confused, top_losses

    out_dir = Path(out_dir)
    confusion = plot_confusion_matrix(evaluation.confusion, class_names, out_dir / f"{prefix}_confusion.png",
                                      title=f"{prefix}: accuracy {evaluation.accuracy:.3f}, macro-F1 {evaluation.macro_f1:.3f}")
    probs, labels = predictions.probs, predictions.labels
    diagram = plot_reliability(reliability(probs, labels), out_dir / f"{prefix}_reliability.png",
                               title=f"{prefix}: ECE {evaluation.ece:.3f} (perfect here: {evaluation.chance_ece:.3f})")
    rows = []
    for i in top_losses(labels, probs, k=top_k):
        sample, pred = predictions.samples[i], int(probs[i].argmax())
        info = catalog.get(sample.item_id, {})
        rows.append({
            "id": sample.item_id, "image": sample.path, "title": info.get("title", ""),
            "object_type": info.get("object_type", ""), "naive_label": class_names[labels[i]],
            "predicted": class_names[pred], "probability": float(probs[i, pred]), "p_naive_label": float(probs[i, labels[i]]),
        })
    n_wrong = int((probs.argmax(1) != labels).sum())
    pairs = most_confused(evaluation.confusion, class_names)
    mistakes = write_gallery(
        out_dir / f"{prefix}_mistakes.html", f"{prefix}: the most confident mistakes", rows, MISTAKE_COLUMNS[1:],
        notes=[f"{n_wrong} of {len(labels)} photos are predicted another class than their naive (catalog keyword) "
               f"label; the {len(rows)} most confident are shown, worst first. Either the model or the label is wrong."],
        tables=[("most confused: naive label → predicted", ["naive label", "predicted", "photos"], pairs)],
    )
    return {"confusion": confusion, "reliability": diagram, "mistakes": mistakes}


def write_evaluation_report(path: str | Path, *, model: str, dataset, split: str, plain, tta=None, agreement=None,
                            skipped: Sequence[tuple[str, str]] = (), files: Mapping[str, Path]) -> dict[str, Any]:
    """``MODEL_SPLIT_evaluation.json``: the metrics (and with TTA, gold labels), the most
    confused pairs, the skipped photos and the files written; returns what it wrote, whose
    ``files`` include the report itself."""
    from muses.analysis.metrics import most_confused

    path = Path(path)
    report = {
        "model": model, "dataset": str(dataset.root), "split": split, "metrics": plain.to_dict(),
        "tta": tta.to_dict() if tta else None,
        "most_confused": [{"naive_label": t, "predicted": p, "count": c}
                          for t, p, c in most_confused(plain.confusion, [c.name for c in plain.per_class])],
        "gold": agreement.to_dict() if agreement else None,
        "skipped": [{"image": i, "why": w} for i, w in skipped],
        "files": {**{k: str(v) for k, v in files.items()}, "report": str(path)},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return report


ISSUE_COLUMNS = ["id", "title", "object_type", "naive_label", "suggested", "confidence", "label_quality", "image"]
SUGGESTION_COLUMNS = ["id", "title", "object_type", "suggested", "confidence", "image"]


def write_label_review(out_dir: str | Path, prefix: str, review, *, gallery_size: int = 200) -> dict[str, Path]:
    """CSV + HTML gallery of a :class:`~muses.analysis.label_issues.LabelReview`'s
    label issues and suggested labels; returns their paths by name. The galleries show the
    first ``gallery_size`` rows (thumbnails are embedded, so a page of thousands would be huge)."""
    out_dir = Path(out_dir)
    issues_note = (
        f"{len(review.issues)} of {review.n_items} labeled records look mislabeled, the least likely label first "
        f"(label_quality: the cross-validated probability of the naive label). Cross-validated agreement "
        f"with the naive labels: {review.cv_accuracy:.1%}."
    )
    suggestions_note = (
        f"{len(review.suggestions)} of {review.n_unlabeled} unlabeled records with photos get a suggested class "
        f"(a linear head fitted on all labeled records gives it a probability of at least {review.threshold:g})."
    )
    return {
        "issues_csv": write_csv(out_dir / f"{prefix}_label_issues.csv", _named(review.issues, exported_name), ISSUE_COLUMNS),
        "issues_html": write_gallery(out_dir / f"{prefix}_label_issues.html", f"{prefix}: records whose label looks wrong",
                                     _named(review.issues[:gallery_size], shown_name), ISSUE_COLUMNS[1:-1],
                                     notes=[issues_note]),
        "suggestions_csv": write_csv(out_dir / f"{prefix}_suggested_labels.csv", _named(review.suggestions, exported_name),
                                     SUGGESTION_COLUMNS),
        "suggestions_html": write_gallery(out_dir / f"{prefix}_suggested_labels.html", f"{prefix}: suggested labels",
                                          _named(review.suggestions[:gallery_size], shown_name), SUGGESTION_COLUMNS[1:-1],
                                          notes=[suggestions_note]),
    }


def _named(rows: Sequence[Mapping[str, Any]], name) -> list[dict]:
    """``rows`` with their class columns (naive label, suggestion) as ``name`` writes a class."""
    return [{**r, **{k: name(r[k]) for k in ("naive_label", "suggested") if k in r}} for r in rows]
