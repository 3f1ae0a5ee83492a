"""Similar objects: precision@10 of visual, keyword and blended search on the shared Met sample.

    python -m benchmarks.similarity --model demo-project/models/naive.safetensors

Builds a temporary project from the Met sample (304 records), classifies it with the given
model (which stores the embeddings), labels every record with examples/definitions.toml, and
for every labeled QUERY record asks for 10 similar objects three ways:

- visual:  the nearest photos by embedding only;
- keyword: today's catalog/class query only (what muses did before embeddings);
- blended: visual neighbours first, the catalog as secondary signal (what muses does now).

Precision@10 = the share of the first 10 labeled results whose naive label is the query's.
Two query modes: "photo" (a curator uploads the record's photo: only its pixels and the model's
classes are known; the record itself is left out of the results) and "item" (more like this
record, whose catalog words the keyword query also uses). Every labeled record is a query
("all"); the rows "unseen" keep only the records the model was NOT trained on (``--queries-not-in``
names the model's training records; default: the bundled met-demo, which the demo model learnt from).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
MET_SAMPLE = Path(os.environ.get("MUSES_MET_SAMPLE", REPO.parent / "shared" / "data" / "met-sample"))
DEFINITIONS = REPO / "examples" / "definitions.toml"
K = 10


def _text(value) -> str:
    return "; ".join(map(str, value)) if isinstance(value, list) else str(value or "")


def build_project(root: Path, sample: Path):
    from muses.collection.store import Image, Item, Store
    from muses.settings import Project, init_project

    init_project(root)
    project = Project.load(root)
    project.definitions_path.write_text(DEFINITIONS.read_text(encoding="utf-8"), encoding="utf-8")
    records = [json.loads(line) for line in (sample / "records.jsonl").read_text(encoding="utf-8").splitlines()]
    with Store.for_project(project).transaction() as s:
        s.add_all(Item(id=str(r["id"]), title=r["title"], object_type=r["what"], material=_text(r.get("medium")),
                       period=_text(r.get("when")), raw=r,
                       images=[Image(original=str(sample / r["image"]), stored_path=str(sample / r["image"]), status="ok")])
                  for r in records)
    return project


def precision(query_label: str, result_ids: list[str], labels: dict[str, str]) -> float | None:
    labeled = [labels[i] for i in result_ids if i in labels][:K]
    return sum(label == query_label for label in labeled) / K if labeled else None


def visitor_photo(photo):
    """Another photo of the same object, as a visitor takes it: the central 80 %, turned by 5
    degrees, a little darker and mirrored: never the catalog's own pixels."""
    from PIL import ImageEnhance, ImageOps

    w, h = photo.size
    crop = photo.crop((w // 10, h // 10, w - w // 10, h - h // 10)).rotate(5, expand=False, fillcolor=(128, 128, 128))
    return ImageOps.mirror(ImageEnhance.Brightness(crop).enhance(0.85))


def run(model: Path, sample: Path, not_in: Path | None, weights: tuple[float, ...] | None = None) -> dict:
    """Precision@10 three ways (and the visitor-photo top-3) at each catalog weight of the blend
    in ``weights`` (default: the product's ``CATALOG_WEIGHT`` alone)."""
    import dataclasses

    import muses
    from muses.actions import open_parts, open_predictor
    from muses.labeling.matching import label_records, record_fields
    from muses.imaging import open_image
    from muses.search import similar

    shipped = similar.CATALOG_WEIGHT
    weights = weights or (shipped,)
    with tempfile.TemporaryDirectory() as tmp:
        project = build_project(Path(tmp) / "proj", sample)
        start = time.monotonic()
        muses.classify_collection(project, muses.ClassifyConfig(model=model), progress=False)
        classify_s = time.monotonic() - start
        # the product's search (the similar-objects action) with everything opened once, as the web app
        # keeps it; "keyword" is the same search without the embeddings, "visual" the embeddings alone
        parts = dataclasses.replace(open_parts(project), predictor=open_predictor(project, model))
        by_words = dataclasses.replace(parts, visual=None)
        store, definitions, visual, clf = parts.store, parts.definitions, parts.visual, parts.predictor
        items = {i.id: i for i in store.items()}
        labels = {lab.item_id: lab.cls for lab in label_records([record_fields(i) for i in items.values()], definitions)
                  if lab.cls}
        trained = set()
        if not_in is not None:
            trained = {str(json.loads(line)["id"]) for line in (not_in / "records.jsonl").read_text().splitlines()}
        queries = sorted(labels)
        photos = {i: open_image(project.path(items[i].images[0].stored_path)) for i in queries}
        by_weight, timings = {}, []
        try:
            for weight in weights:
                similar.CATALOG_WEIGHT = weight  # the blend reads it at each search
                by_weight[weight] = _measure(muses, project, parts, by_words, visual, clf, queries, photos, labels,
                                             trained, timings)
        finally:
            similar.CATALOG_WEIGHT = shipped
        chosen = by_weight.get(shipped, next(iter(by_weight.values())))
        return {"date": dt.date.today().isoformat(), "model": model.name, "records": len(items),
                "labeled": len(labels), "queries": chosen["queries"], "precision_at_10": chosen["precision_at_10"],
                "visitor_top3": chosen["visitor_top3"], "catalog_weight": shipped,
                "by_weight": {str(w): r for w, r in by_weight.items()},
                "classify_s": round(classify_s, 1), "query_ms_median": round(1000 * float(np.median(timings)), 1)}


def _measure(muses, project, parts, by_words, visual, clf, queries, photos, labels, trained, timings) -> dict:
    scores: dict[str, dict[str, list[float]]] = {
        f"{mode}, {subset}": {"visual": [], "keyword": [], "blended": []}
        for mode in ("photo", "item") for subset in ("all", "unseen")}
    ask = 4 * K  # results asked for: some are unlabeled
    visitor_hits = []
    for item_id in queries:
        photo = photos[item_id]
        feats = clf.extract_features([photo])
        like_photo = muses.SimilarConfig(limit=ask + 1)
        t = time.monotonic()
        ways = {
            "visual": [i for i, _ in visual.neighbours(feats, ask, frozenset({item_id}))],
            "keyword": [h.item_id for h in muses.similar_objects(project, like_photo, photos=[photo],
                                                                 parts=by_words).hits if h.item_id != item_id],
            "blended": [h.item_id for h in muses.similar_objects(project, like_photo, photos=[photo],
                                                                 parts=parts).hits if h.item_id != item_id],
        }
        timings.append(time.monotonic() - t)
        subsets = ("all", "unseen") if item_id not in trained else ("all",)
        for way, ids in ways.items():
            for subset in subsets:
                scores[f"photo, {subset}"][way].append(precision(labels[item_id], ids, labels))
        visitor = muses.similar_objects(project, muses.SimilarConfig(limit=3), photos=[visitor_photo(photo)], parts=parts)
        visitor_hits.append(item_id in [h.item_id for h in visitor.hits])
        like_item = muses.SimilarConfig(ids=(item_id,), limit=ask)
        ways = {
            "visual": [i for i, _ in visual.neighbours(visual.item_vector([item_id]), ask, frozenset({item_id}))],
            "keyword": [h.item_id for h in muses.similar_objects(project, like_item, parts=by_words).hits],
            "blended": [h.item_id for h in muses.similar_objects(project, like_item, parts=parts).hits],
        }
        for way, ids in ways.items():
            for subset in subsets:
                scores[f"item, {subset}"][way].append(precision(labels[item_id], ids, labels))
    table = {mode: {way: round(float(np.mean([p for p in ps if p is not None])), 3) for way, ps in ways_.items()}
             for mode, ways_ in scores.items() if ways_["visual"]}
    return {"precision_at_10": table, "visitor_top3": round(float(np.mean(visitor_hits)), 3),
            "queries": {mode: len(ways_["visual"]) for mode, ways_ in scores.items()}}


def write(result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    lines = [f"# Similar objects: precision@{K} ({result['date']})", "",
             f"Met sample: {result['records']} records, {result['labeled']} with a naive label; "
             f"model {result['model']}. \"all\": every labeled record is a query; \"unseen\": only those the "
             "model was not trained on.", "",
             "| query | queries | visual | keyword | blended |", "| --- | --- | --- | --- | --- |"]
    for mode, row in result["precision_at_10"].items():
        lines.append(f"| {mode} | {result['queries'][mode]} | {row['visual']:.3f} | {row['keyword']:.3f} | {row['blended']:.3f} |")
    lines += ["", f"catalog weight of the blend: {result['catalog_weight']}; a visitor's photo of the object (cropped, "
                  f"turned, darker, mirrored) finds it in the top 3: {result['visitor_top3']:.3f}.", ""]
    if len(result["by_weight"]) > 1:
        lines += ["| catalog weight | photo, all: blended | item, all: blended | visitor top-3 |", "| --- | --- | --- | --- |"]
        lines += [f"| {w} | {r['precision_at_10']['photo, all']['blended']:.3f} | "
                  f"{r['precision_at_10']['item, all']['blended']:.3f} | {r['visitor_top3']:.3f} |"
                  for w, r in result["by_weight"].items()]
    lines += ["", f"classify (with embeddings) of the sample: {result['classify_s']} s; "
                  f"three searches per photo query: median {result['query_ms_median']} ms.", ""]
    path = RESULTS / f"similarity-{result['date']}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model file (.safetensors)")
    parser.add_argument("--sample", type=Path, default=MET_SAMPLE, help="Met sample folder")
    parser.add_argument("--queries-not-in", type=Path, default=REPO / "examples" / "met-demo",
                        help="records the model was trained on (left out of the queries)")
    parser.add_argument("--weights", type=float, nargs="+", metavar="W",
                        help="catalog weights of the blend to compare (default: the product's)")
    args = parser.parse_args()
    result = run(args.model, args.sample, args.queries_not_in, tuple(args.weights or ()))
    print(json.dumps(result["precision_at_10"], indent=2))
    print(f"written: {write(result)}")


if __name__ == "__main__":
    main()
