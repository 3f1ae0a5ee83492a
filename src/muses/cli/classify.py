"""`muses classify`, `muses similar` and `muses map`."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.cli.engines import add_compute_args, compute_from_args
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
    from muses.model import RUNTIMES

    p = command_parser(subparsers, "classify", help="store the model's top classes on every item of the collection",
                       examples=CLASSIFY_EXAMPLES)
    p.add_argument("--update-existing", action="store_true", help="classify items that already have a classification too")
    p.add_argument("--batch-size", type=positive(), default=32, help="photos per batch and commit (default 32)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto", help="inference runtime (default auto)")
    p.add_argument("--top-k", type=positive(), default=5, help="classes stored per item (default 5)")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--no-embeddings", action="store_true",
                   help="do not store the photos' embeddings (similar objects then go by the catalog's words only)")
    add_compute_args(p)
    p.set_defaults(func=run_classify)

    p = command_parser(subparsers, "similar", help="find collection objects similar to photos or to given items",
                       examples=SIMILAR_EXAMPLES)
    p.add_argument("images", nargs="*", type=Path, metavar="IMG", help="photos of one object")
    p.add_argument("--ids", nargs="+", metavar="ID", help="item ids: more objects like these")
    p.add_argument("--item", metavar="ID", help="an item id: more objects like this one")
    p.add_argument("--limit", type=positive(), default=20, help="results (default 20)")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run_similar)

    p = command_parser(subparsers, "map", help="lay out the collection by how its objects look, for the web page /map",
                       examples=MAP_EXAMPLES)
    p.add_argument("--method", choices=("auto", "umap", "pca"), default="auto",
                   help="layout: umap (objects that look alike close together), pca (fast, rough); default auto")
    p.add_argument("--seed", type=int, default=0, help="random seed of the layout (default 0)")
    p.set_defaults(func=run_map)


def _ids(label: str, ids: list[str]) -> None:
    if ids:
        more = f" … and {len(ids) - LISTED} more" if len(ids) > LISTED else ""
        print(f"{label}: {', '.join(ids[:LISTED])}{more}")


def run_classify(args) -> int:
    from muses.classify import REPORT_NAME, classify_collection
    from muses.cli.model import load_for_command
    from muses.compute import require_ray
    from muses.search import refresh_project_indexes

    project = find_project(args.project)
    compute = compute_from_args(args)
    if compute.uses_ray:
        require_ray()  # before loading the model: say what to install first
    load_for_command(project, args.model, args.runtime)  # fail fast, once, with the warnings shown
    report = classify_collection(
        project, model_path=args.model, runtime=args.runtime, batch_size=args.batch_size, top_k=args.top_k,
        update_existing=args.update_existing, progress=True, embed=not args.no_embeddings, compute=compute,
    )
    out = report.write(project.root / REPORT_NAME)
    _ids("no usable photo (check `muses items --problems`; truncated photos must be replaced: download again "
         "or photograph the object again)", report.without_images)
    _ids("every image unreadable", sorted(report.failed))
    print(format_table(["items", "count"], [
        ["classified now", len(report.classified)],
        ["already classified (kept)", report.skipped_existing],
        ["no usable image", len(report.without_images)],
        ["images unreadable", len(report.failed)],
    ]))
    print(f"model {report.model}; report: {out}")
    refresh_project_indexes(project)
    print("next: `muses map` to lay out the collection by look, then `muses serve`")
    return 0  # items left out are listed above and in the report, not failures of the run


def run_similar(args) -> int:
    from muses.cli.model import load_for_command
    from muses.collection.store import Store
    from muses.labeling.definitions import load_definitions
    from muses.imaging import open_image
    from muses.search import open_engine
    from muses.embeddings import Embeddings
    from muses.search.similar import open_visual, similar_to_image, similar_to_items

    ids = ([args.item] if args.item else []) + (args.ids or [])
    if bool(args.images) == bool(ids):
        raise UsageError("give photos (IMG ...) or --item ID / --ids ID ..., not both and not neither")
    project = find_project(args.project)
    store = Store.for_project(project)
    engine = open_engine(store)
    visual = open_visual(Embeddings.for_project(project, store))
    definitions = load_definitions(project.definitions_path) if project.definitions_path.is_file() else None
    classes = []
    if ids:
        items = list(store.items(ids))
        missing = sorted(set(ids) - {i.id for i in items})
        if missing:
            raise UsageError(f"no item with id {', '.join(missing)} in the store; `muses items` lists them")
        hits = similar_to_items(items, engine, definitions=definitions, limit=args.limit, visual=visual)
    else:
        clf = load_for_command(project, args.model)
        if visual and not visual.made_by(clf.features_key):
            print(f"the stored embeddings come from another model than {clf.name}: similar objects by the catalog "
                  "only; `muses classify --update-existing` with this model stores its embeddings", file=sys.stderr)
            visual = None
        photos = [open_image(p) for p in args.images]  # photos of one object: all of them or no answer
        result = similar_to_image(clf.predict_pil(photos), clf.class_names, engine, definitions=definitions,
                                  limit=args.limit, features=clf.extract_features(photos) if visual else None,
                                  visual=visual)
        classes, hits = result.classes[:5], result.hits
    titles = {i.id: i.title for i in store.items([h.item_id for h in hits])}
    if args.json:
        print(json.dumps({
            "classes": [{"name": n, "probability": p} for n, p in classes],
            "similar": [{"item_id": h.item_id, "title": titles.get(h.item_id, ""), "score": round(h.score, 4),
                         "looks_alike": None if h.looks_alike is None else round(h.looks_alike, 4),
                         "matched": list(h.matched), "why": h.why} for h in hits],
        }, indent=2, ensure_ascii=False))
        return 0
    if classes:
        print(format_table(["class", "probability"], [[n, f"{p:.3f}"] for n, p in classes]))
        print()
    print(format_table(["object", "title", "why"], [[h.item_id, titles.get(h.item_id, "")[:50], h.why] for h in hits]))
    print(f"{len(hits)} similar objects")
    if visual is None:
        print("found by the catalog's words only: run `muses classify` to store the photos' embeddings, "
              "and similar objects will be those that look alike")
    else:
        print("next: `muses similar --item ID` for any of them, or `muses serve` to see them")
    return 0


def run_map(args) -> int:
    from muses.collection_map import build_map

    project = find_project(args.project)
    print("laying out the collection (UMAP needs about half a minute to start)…", flush=True)
    report = build_map(project, method=args.method, seed=args.seed)
    print(f"{report.count} objects placed by {report.method} in {report.seconds:.1f} s: {report.path}")
    print("next: `muses serve` and open /map (click a dot to open the object)")
    return 0
