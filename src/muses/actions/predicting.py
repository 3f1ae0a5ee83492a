"""Use the model: predict new photos, find similar objects, classify the collection, lay it out
on a map. The command line and the web app both call these."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from muses.errors import MusesError
from muses.progress import note
from muses.settings import ComputeSettings, Project

if TYPE_CHECKING:
    from PIL.Image import Image

    from muses.classify import ClassifyReport
    from muses.collection.store import Item, Store
    from muses.collection_map import MapReport
    from muses.labeling.definitions import Definitions
    from muses.model.predictor import Predictor
    from muses.predictions import ClassProbability
    from muses.search import SearchEngine
    from muses.search.similar import SimilarHit, Visual


class UnknownItems(MusesError):
    """Item ids that are not in the store."""


class NoQuery(MusesError):
    """A similar-objects search with neither photos nor item ids, or with both."""


def open_predictor(project: Project, model: Path | None = None, runtime: str = "auto") -> Predictor:
    """The model of ``model`` (default: muses.toml's), its warnings (e.g. trained under other
    definitions) shown with :func:`muses.progress.note`; the one way the actions load it."""
    from muses.model.loading import open_model

    note(f"loading the model {model or project.model_path} ...")
    predictor, notes = open_model(model, runtime, project=project)
    for text in notes:
        note(f"warning: {text}")
    return predictor


# -- predict photos ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PredictConfig:
    images: tuple[Path, ...] = ()
    model: Path | None = None  # None: muses.toml's model_path
    top_k: int | None = 5  # classes per answer (None: all)
    one_object: bool = False  # the photos show one object: one answer, their mean
    max_pixels: int | None = None  # larger photos are skipped unread (None: muses.toml [images] max_pixels)
    runtime: str = "auto"  # auto (ONNX Runtime, exported once if missing), torch or onnx


@dataclass(frozen=True)
class PhotoAnswer:
    image: str  # the photo's path, or "one object (N photos)"
    answer: str  # what a curator reads: the class, "uncertain: maybe ..." or "none of these"
    kind: str  # sure, uncertain or none (muses.predictions.SURE, UNCERTAIN, NONE)
    classes: list[ClassProbability]  # the top_k, most likely first


@dataclass(frozen=True)
class PredictResult:
    model: Path
    answers: list[PhotoAnswer]
    skipped: list[tuple[str, str]]  # (photo, why) that could not be read


def predict_photos(project: Project, config: PredictConfig, *, predictor: Predictor | None = None) -> PredictResult:
    """Classes for new photos; a photo that cannot be read (or is over ``max_pixels``) is
    skipped with the reason, the others are answered. ``predictor``: a model already loaded."""
    from muses.model.image_loading import load_images
    from muses.predictions import answer, mean_probabilities, ranked

    clf = predictor or open_predictor(project, config.model, config.runtime)
    max_pixels = config.max_pixels or project.settings.images.max_pixels
    paths = list(config.images)
    images, kept, failed = load_images(paths, clf.cfg.input_size, max_pixels=max_pixels)
    names = [str(paths[i]) for i in kept]
    probs = clf.predict_pil(images)
    if config.one_object and len(images):
        probs, names = mean_probabilities(probs)[None, :], [f"one object ({len(names)} photos)"]
    answers = []
    for name, row in zip(names, probs):
        classes = ranked(clf.class_names, row)
        said = answer(classes, clf.cfg.threshold)
        answers.append(PhotoAnswer(name, str(said), said.kind, classes[: config.top_k]))
    return PredictResult(config.model or project.model_path, answers, [(str(path), why) for _, path, why in failed])


# -- similar objects -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SimilarConfig:
    images: tuple[Path, ...] = ()  # photos of one object ...
    ids: tuple[str, ...] = ()  # ... or items of the collection: more like these
    limit: int = 20
    model: Path | None = None  # for photos (None: muses.toml's model_path)


@dataclass
class SimilarParts:
    """What a search needs, opened once by a caller that searches often (the web app keeps
    them); :func:`open_parts` opens them from a project."""

    store: Store
    engine: SearchEngine
    definitions: Definitions | None = None
    visual: Visual | None = None  # the stored photo embeddings (None: by the catalog only)
    predictor: Predictor | None = None  # for photos (None: muses.toml's model, loaded then)


@dataclass(frozen=True)
class SimilarResult:
    hits: list[SimilarHit]
    items: dict[str, Item]  # the hits' items, by id
    classes: list[ClassProbability] = field(default_factory=list)  # of the photos, ranked (none for ids)
    answer: str = ""  # what the model answers for the photos
    answer_kind: str = ""  # sure, uncertain or none
    model: str = ""  # the model's name, for photos
    by_look: bool = False  # photo embeddings were used; False: by the catalog's words only
    notes: list[str] = field(default_factory=list)  # why the search fell back to the catalog


def similar_objects(project: Project, config: SimilarConfig, *, photos: Sequence[Image] = (),
                    parts: SimilarParts | None = None) -> SimilarResult:
    """Collection objects like the photos of one object (``config.images``, or already decoded
    ``photos``), or like the items ``config.ids``: those whose photos look alike first, the
    catalog's words and the predicted classes reorder near ties."""
    from muses.search.similar import similar_to_image, similar_to_items

    if bool(config.images or photos) == bool(config.ids):
        raise NoQuery("give photos or item ids, not both and not neither")
    parts = parts or open_parts(project)
    if config.ids:
        items = list(parts.store.items(list(config.ids)))
        missing = sorted(set(config.ids) - {i.id for i in items})
        if missing:
            raise UnknownItems(f"no item with id {', '.join(missing)} in the store; `muses items` lists them")
        hits = similar_to_items(items, parts.engine, definitions=parts.definitions, limit=config.limit,
                                visual=parts.visual)
        return SimilarResult(hits, _items(parts.store, hits), by_look=parts.visual is not None)
    return _similar_to_photos(project, config, photos, parts, similar_to_image)


def _similar_to_photos(project, config: SimilarConfig, photos, parts: SimilarParts, similar_to_image) -> SimilarResult:
    from muses.imaging import open_image
    from muses.predictions import ClassProbability, answer

    clf = parts.predictor or open_predictor(project, config.model)
    visual, notes = parts.visual, []
    if visual and not visual.made_by(clf.features_key):
        notes.append(f"the stored embeddings come from another model than {clf.name}: similar objects by the "
                     "catalog only; `muses classify --update-existing` with this model stores its embeddings")
        visual = None
    photos = list(photos) or [open_image(p) for p in config.images]  # one object's photos: all or no answer
    result = similar_to_image(clf.predict_pil(photos), clf.class_names, parts.engine, definitions=parts.definitions,
                              limit=config.limit, features=clf.extract_features(photos) if visual else None,
                              visual=visual)
    classes = [ClassProbability(n, p) for n, p in result.classes]
    said = answer(classes, clf.cfg.threshold)
    return SimilarResult(result.hits, _items(parts.store, result.hits), classes=classes, answer=str(said),
                         answer_kind=said.kind, model=clf.name, by_look=visual is not None, notes=notes)


def open_parts(project: Project) -> SimilarParts:
    from muses.collection.store import Store
    from muses.embeddings import Embeddings
    from muses.search import open_engine
    from muses.search.similar import open_visual

    store = Store.for_project(project)
    definitions = None
    if project.definitions_path.is_file():
        from muses.labeling.definitions import load_definitions

        definitions = load_definitions(project.definitions_path)
    return SimilarParts(store, open_engine(store), definitions, open_visual(Embeddings.for_project(project, store)))


def _items(store: Store, hits: list[SimilarHit]) -> dict[str, Item]:
    return {item.id: item for item in store.items([h.item_id for h in hits])}


# -- classify the collection ---------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifyConfig:
    model: Path | None = None  # None: muses.toml's model_path
    runtime: str = "auto"
    batch_size: int = 32  # photos per batch and commit
    top_k: int = 5  # classes stored per item
    update_existing: bool = False  # classify items that already have a classification too
    embed: bool = True  # store the photos' embeddings (what "looks alike" and the map use)
    ids: tuple[str, ...] | None = None  # only these items (None: the whole collection)
    compute: ComputeSettings | None = None  # None: muses.toml [compute]
    write_report: bool = True  # write classify-report.json into the project folder
    refresh_indexes: bool = True  # bring search and browsing up to date afterwards (the web app does it itself)


@dataclass(frozen=True)
class ClassifyResult:
    report: ClassifyReport
    report_path: Path | None


def classify_collection(project: Project, config: ClassifyConfig = ClassifyConfig(), *,
                        progress: bool = True) -> ClassifyResult:
    """Store the model's top classes (and the photos' embeddings) on every item not yet
    classified (all with ``update_existing``); resumes where an interrupted run stopped.
    ``progress``: show the run's progress bar (see :mod:`muses.progress`)."""
    from muses.classify import REPORT_NAME
    from muses.classify import classify_collection as classify_items
    from muses.search import refresh_project_indexes

    compute = config.compute or project.settings.compute
    if compute.uses_ray:
        from muses.compute import require_ray

        require_ray()  # before loading the model: say what to install first
    open_predictor(project, config.model, config.runtime)  # fail fast, once, with the warnings shown
    report = classify_items(
        project, model_path=config.model, runtime=config.runtime, batch_size=config.batch_size, top_k=config.top_k,
        update_existing=config.update_existing, ids=config.ids, progress=progress, embed=config.embed,
        compute=compute,
    )
    if config.refresh_indexes:
        refresh_project_indexes(project)
    return ClassifyResult(report, report.write(project.root / REPORT_NAME) if config.write_report else None)


# -- the collection map --------------------------------------------------------------------------
@dataclass(frozen=True)
class MapConfig:
    method: str = "auto"  # umap (objects that look alike close together), pca (fast, rough) or auto
    seed: int = 0


def map_collection(project: Project, config: MapConfig = MapConfig()) -> MapReport:
    """Lay out the collection by how its objects look (the web page /map), from the embeddings
    `classify` stored."""
    from muses.collection_map import build_map

    return build_map(project, method=config.method, seed=config.seed)


def answer_json(classes: Sequence[ClassProbability], digits: int = 4) -> list[dict[str, Any]]:
    """Classes as the JSON answers (CLI --json, the web API) show them: ``name`` to match on,
    ``shown`` for people ("none of these" for the ``other`` class)."""
    from muses.predictions import shown_name

    return [{"name": c.name, "shown": shown_name(c.name), "probability": round(c.probability, digits)} for c in classes]
