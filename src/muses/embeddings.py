"""Photo embeddings: one vector per usable photo, what "looks alike" and the collection map use.

A photo's embedding is the model backbone's pooled features, L2-normalised and stored as
float16 ON DISK beside the store: fixed-size shard files in ``embeddings/`` of the project
folder, read through memory maps, so a collection of any size never has to fit in RAM. The
store's ``image_embeddings`` table maps an image id to its slot (shard = slot // SHARD_ROWS,
row = slot % SHARD_ROWS); a slot is written before its row is committed, so an interrupted run
leaves at most an unused slot, never a row pointing at nothing.

Embeddings of different backbones cannot be compared: ``meta.json`` names the weights that
made them (the predictor's ``features_key``), and embedding with other weights starts afresh.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import ForeignKey, Integer, delete, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from muses.collection.store import USABLE_STATUSES, Base, Image, Store

DIRNAME = "embeddings"
META = "meta.json"
SHARD_ROWS = 4096  # 4096 × 1280 float16 = 10 MiB a shard for EfficientNet-Lite0


class ImageEmbedding(Base):
    __tablename__ = "image_embeddings"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, unique=True)


def normalized(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class Meta:
    features_key: str  # the weights that made the vectors
    model: str = ""  # the model's name, for people
    dim: int = 0  # the vectors' length, known once the first is stored


class Embeddings:
    """The stored embeddings of one project."""

    def __init__(self, store: Store, folder: Path):
        self.store, self.folder = store, folder
        ImageEmbedding.__table__.create(store.engine, checkfirst=True)  # a store made before this table

    @classmethod
    def for_project(cls, project, store: Store | None = None) -> "Embeddings":
        return cls(store or Store.for_project(project), project.root / DIRNAME)

    # -- what is stored ---------------------------------------------------------------------------
    def meta(self) -> Meta | None:
        path = self.folder / META
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return Meta(data["features_key"], data.get("model", ""), int(data.get("dim", 0)))

    def _write_meta(self, meta: Meta) -> None:
        (self.folder / META).write_text(json.dumps(meta.__dict__), encoding="utf-8")

    def prepare(self, features_key: str, model: str = "") -> None:
        """Get ready to store vectors made by the weights ``features_key`` names; vectors of other weights are dropped."""
        current = self.meta()
        if current is not None and current.features_key == features_key:
            return
        with self.store.transaction() as s:
            s.execute(delete(ImageEmbedding))
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        self._write_meta(Meta(features_key, model))

    def stamp(self) -> tuple:
        """Changes whenever the stored vectors do."""
        files = sorted(self.folder.glob("*.f16")) + [self.folder / META]
        return (self.count(), tuple(f.stat().st_mtime_ns for f in files if f.exists()))

    def count(self) -> int:
        with self.store.session() as s:
            return s.scalar(select(func.count()).select_from(ImageEmbedding)) or 0

    def items_missing(self) -> set[str]:
        """Items with a usable photo and no embedded photo at all (classified before embeddings
        existed, or with another model). An item whose other photos are embedded is not missing:
        a photo listed usable that could not be read is never embedded, and would otherwise send
        its item back to every classify run."""
        embedded = select(Image.item_id).join(ImageEmbedding, ImageEmbedding.image_id == Image.id)
        with self.store.session() as s:
            return set(s.scalars(select(Image.item_id).where(
                Image.status.in_(USABLE_STATUSES), Image.item_id.not_in(embedded)).distinct()))

    def slots(self) -> tuple[np.ndarray, np.ndarray]:
        """(image ids, their slots), both int64, ordered by slot."""
        with self.store.session() as s:
            rows = s.execute(select(ImageEmbedding.image_id, ImageEmbedding.slot).order_by(ImageEmbedding.slot)).all()
        data = np.asarray(rows, dtype=np.int64).reshape(-1, 2)
        return data[:, 0], data[:, 1]

    def slots_of(self, image_ids: Sequence[int]) -> dict[int, int]:
        with self.store.session() as s:
            return dict(s.execute(select(ImageEmbedding.image_id, ImageEmbedding.slot)
                                  .where(ImageEmbedding.image_id.in_([int(i) for i in image_ids]))).all())

    # -- shards -----------------------------------------------------------------------------------
    def _shard_path(self, shard: int) -> Path:
        return self.folder / f"shard-{shard:05d}.f16"

    def _shard(self, shard: int, dim: int, *, write: bool = False) -> np.memmap:
        path = self._shard_path(shard)
        if write and not path.exists():
            return np.memmap(path, dtype=np.float16, mode="w+", shape=(SHARD_ROWS, dim))
        return np.memmap(path, dtype=np.float16, mode="r+" if write else "r", shape=(SHARD_ROWS, dim))

    def shards(self) -> Iterator[tuple[int, np.memmap]]:
        """(first slot, the shard's rows read-only) for every shard file, in slot order."""
        meta = self.meta()
        if meta is None or not meta.dim:
            return
        shard = 0
        while self._shard_path(shard).exists():
            yield shard * SHARD_ROWS, self._shard(shard, meta.dim)
            shard += 1

    def vectors(self, slots: Sequence[int]) -> np.ndarray:
        """The vectors in ``slots``, float32, one row each."""
        meta = self.meta()
        if meta is None or not meta.dim or not len(slots):
            return np.zeros((0, meta.dim if meta else 0), dtype=np.float32)
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((len(slots), meta.dim), dtype=np.float32)
        for shard in np.unique(slots // SHARD_ROWS):
            here = slots // SHARD_ROWS == shard
            out[here] = self._shard(int(shard), meta.dim)[slots[here] % SHARD_ROWS]
        return out

    def put(self, session: Session, image_ids: Sequence[int], features: np.ndarray) -> None:
        """Store ``features`` (one row per image id) in the caller's transaction: written to the
        shards now, their slots committed with the caller's commit. A photo embedded before keeps its slot."""
        meta = self.meta()
        if meta is None:
            raise RuntimeError("call prepare() before put()")
        if len(image_ids) != len(features):
            raise ValueError(f"{len(image_ids)} image ids for {len(features)} vectors")
        if not len(image_ids):
            return
        if not meta.dim:
            meta = Meta(meta.features_key, meta.model, int(features.shape[1]))
            self._write_meta(meta)
        elif features.shape[1] != meta.dim:
            raise ValueError(f"vectors of length {features.shape[1]} where the stored ones have {meta.dim}")
        existing = dict(session.execute(select(ImageEmbedding.image_id, ImageEmbedding.slot)
                                        .where(ImageEmbedding.image_id.in_([int(i) for i in image_ids]))).all())
        last = session.scalar(select(func.max(ImageEmbedding.slot)))
        next_slot = 0 if last is None else last + 1
        slots = []
        for image_id in image_ids:
            if int(image_id) in existing:
                slots.append(existing[int(image_id)])
            else:
                slots.append(next_slot)
                session.add(ImageEmbedding(image_id=int(image_id), slot=next_slot))
                next_slot += 1
        slots = np.asarray(slots, dtype=np.int64)
        vectors = normalized(features).astype(np.float16)
        for shard in np.unique(slots // SHARD_ROWS):
            here = slots // SHARD_ROWS == shard
            rows = self._shard(int(shard), meta.dim, write=True)
            rows[slots[here] % SHARD_ROWS] = vectors[here]
            rows.flush()
        session.flush()
