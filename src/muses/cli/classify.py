"""`muses classify`, `muses similar` and `muses map`."""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from muses.actions import (
    ClassifyConfig, MapConfig, SimilarConfig, classify_collection, map_collection, similar_objects,
)
from muses.actions.predicting import answer_json
from muses.cli import UsageError, command_parser, config_from, default_of, format_table, positive
from muses.cli.engines import add_compute_args, compute_from_args
from muses.model import RUNTIMES
from muses.predictions import shown_name
from muses.settings import find_project

CLASSIFY_EXAMPLES = """\
  muses classify                        # items not classified yet; resumes after Ctrl-C
  muses classify --update-existing      # everything again, e.g. after retraining
  muses classify --top-k 3 --batch-size 64 --model models/naive.safetensors
  muses classify --engine ray --ray-workers 4     # on a Ray cluster started here
  muses classify --engine ray --address auto      # on the cluster of `ray start --head`

Stores on each item {"model", "date", "classes": [{"name", "probability"}, ...]}, averaged
over the item's usable photos, and each photo's embedding in embeddings/ (what "looks alike"
and the collection map use); writes classify-report.json (every item left out, and why).
"""

SIMILAR_EXAMPLES = """\
  muses similar photo.jpg                 # objects like the one in the photo
  muses similar front.jpg back.jpg        # two photos of one object
  muses similar --item 10427              # objects like this one of the collection
  muses similar --ids 10427 10512 --limit 10 --json

Objects whose photos look alike come first ("looks alike 0.83": 1 is the same photo, about
0.5 and less is unrelated); the catalog's words and the predicted classes reorder near ties.
"""
MAP_EXAMPLES = """\
  muses map                 # after `muses classify`; then open http://127.0.0.1:8000/map
  muses map --method pca    # quick and plain, for a first look at a large collection
"""
LISTED = 20  # ids printed per list; the report file holds them all


def register(subparsers) -> None:
    c = ClassifyConfig  # the defaults shown are read from the configs, never written here
    p = command_parser(subparsers, "classify", help="store the model's top classes on every item of the collection",
                       examples=CLASSIFY_EXAMPLES)
    p.add_argument("--update-existing", action="store_true", default=None,
                   help="classify items that already have a classification too")
    p.add_argument("--batch-size", type=positive(), help=f"photos per batch and commit (default {default_of(c, 'batch_size')})")
    p.add_argument("--runtime", choices=RUNTIMES, help=f"inference runtime (default {default_of(c, 'runtime')})")
    p.add_argument("--top-k", type=positive(), help=f"classes stored per item (default {default_of(c, 'top_k')})")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--no-embeddings", dest="embed", action="store_false", default=None,
                   help="do not store the photos' embeddings (similar objects then go by the catalog's words only)")
    add_compute_args(p)
    p.set_defaults(func=run_classify)

    p = command_parser(subparsers, "similar", help="find collection objects similar to photos or to given items",
                       examples=SIMILAR_EXAMPLES)
    p.add_argument("images", nargs="*", type=Path, metavar="IMG", help="photos of one object")
    p.add_argument("--ids", nargs="+", metavar="ID", help="item ids: more objects like these")
    p.add_argument("--item", metavar="ID", help="an item id: more objects like this one")
    p.add_argument("--limit", type=positive(), help=f"results (default {default_of(SimilarConfig, 'limit')})")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_similar)

    p = command_parser(subparsers, "map", help="lay out the collection by how its objects look, for the web page /map",
                       examples=MAP_EXAMPLES)
    p.add_argument("--method", choices=("auto", "umap", "pca"),
                   help="layout: umap (objects that look alike close together), pca (fast, rough); default "
                        f"{default_of(MapConfig, 'method')}")
    p.add_argument("--seed", type=int, help=f"random seed of the layout (default {default_of(MapConfig, 'seed')})")
    p.set_defaults(func=run_map)


def _ids(label: str, ids: list[str]) -> None:
    if ids:
        more = f" … and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
        print(f"{label}: {', '.join(ids[:LISTED])}{more}")


def classify_config(args) -> ClassifyConfig:
    return dataclasses.replace(config_from(ClassifyConfig(), args), compute=compute_from_args(args))


def run_classify(args) -> int:
    result = classify_collection(find_project(args.project), classify_config(args))
    report = result.report
    _ids("no usable photo (check `muses items --problems`; truncated photos must be replaced: download again "
         "or photograph the object again)", report.without_images)
    _ids("every image unreadable", sorted(report.failed))
    print(format_table(["items", "count"], [
        ["classified now", len(report.classified)],
        ["already classified (kept)", report.skipped_existing],
        ["no usable image", len(report.without_images)],
        ["images unreadable", len(report.failed)],
    ]))
    print(f"model {report.model}; report: {result.report_path}")
    print("next: `muses map` to lay out the collection by look, then `muses serve`")
    return 0  # items left out are listed above and in the report, not failures of the run


def similar_config(args) -> SimilarConfig:
    ids = ([args.item] if args.item else []) + (args.ids or [])
    if bool(args.images) == bool(ids):
        raise UsageError("give photos (IMG ...) or --item ID / --ids ID ..., not both and not neither")
    return dataclasses.replace(config_from(SimilarConfig(), args), ids=tuple(ids))


def run_similar(args) -> int:
    result = similar_objects(find_project(args.project), similar_config(args))
    for text in result.notes:
        print(text, file=sys.stderr)
    classes, hits = result.classes[:5], result.hits
    titles = {item_id: item.title for item_id, item in result.items.items()}
    numbers = {item_id: item.number for item_id, item in result.items.items()}
    if args.json:
        print(json.dumps({
            "classes": answer_json(classes),
            "similar": [{"item_id": h.item_id, "object_number": numbers.get(h.item_id, h.item_id),
                         "title": titles.get(h.item_id, ""), "score": round(h.score, 4),
                         "looks_alike": None if h.looks_alike is None else round(h.looks_alike, 4),
                         "matched": list(h.matched), "why": h.why} for h in hits],
        }, indent=2, ensure_ascii=False))
        return 0
    if classes:
        print(format_table(["class", "probability"], [[shown_name(c.name), f"{c.probability:.3f}"] for c in classes]))
        print()
    print(format_table(["object number", "title", "why"],
                       [[numbers.get(h.item_id, h.item_id), titles.get(h.item_id, "")[:50], h.why] for h in hits]))
    print(f"{len(hits)} similar objects")
    if not result.by_look:
        print("found by the catalog's words only: run `muses classify` to store the photos' embeddings, "
              "and similar objects will be those that look alike")
    else:
        print("next: `muses similar --item ID` for any of them, or `muses serve` to see them")
    return 0


def run_map(args) -> int:
    project = find_project(args.project)
    print("laying out the collection (UMAP needs about half a minute to start)…", flush=True)
    report = map_collection(project, config_from(MapConfig(), args))
    print(f"{report.count} objects placed by {report.method} in {report.seconds:.1f} s: {report.path}")
    print("next: `muses serve` and open /map (click a dot to open the object)")
    return 0
