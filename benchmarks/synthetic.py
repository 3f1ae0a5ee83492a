"""A synthetic collection shaped like the Met's: up to millions of records, a few thousand photos.

    python -m benchmarks.synthetic OUT_DIR --records 1000000 [--images 2000] [--seed 0]

Writes OUT_DIR/records.jsonl (the Met's scrapi fields, for ``muses import --preset met-scrapi``)
and OUT_DIR/images/ (small generated JPEGs, each reused by many records: the scale bench measures
the store and the commands, not photo decoding). Titles and facets come from the labeling
bench's vocabulary, so about half of the records get a naive label, as in a real catalog.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from muses.testing.catalog import FACETS, catalog_title

IMAGE_SIDE = 96
CHUNK = 10_000  # records serialised per write: one C-level json.dumps call per record, one write per chunk
_MEDIA = ["Marble", "Bronze", "Terracotta", "Watercolor on ivory", "Albumen silver print", "Oil on canvas", "Gold"]
_PERIODS = ["A.D. 1800-1900", "A.D. 1700-1800", "B.C. 500-400", "A.D. 1900-present", "A.D. 1600-1700"]


@dataclass(frozen=True)
class Synthetic:
    records: Path
    images: Path
    count: int
    seconds: float


def write_images(folder: Path, n: int, *, seed: int = 0) -> list[str]:
    """``n`` small distinct JPEGs (coloured shapes on a plain ground); their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = []
    for i in range(n):
        name = f"synthetic-{i:05d}.jpg"
        if not (folder / name).is_file():
            im = Image.new("RGB", (IMAGE_SIDE, IMAGE_SIDE), tuple(rng.randrange(256) for _ in range(3)))
            box = sorted(rng.sample(range(IMAGE_SIDE), 2)) + sorted(rng.sample(range(IMAGE_SIDE), 2))
            ImageDraw.Draw(im).ellipse((box[0], box[2], box[1], box[3]), fill=tuple(rng.randrange(256) for _ in range(3)))
            im.save(folder / name, quality=80)
        names.append(name)
    return names


def _record(i: int, rng: random.Random, image: str) -> dict:
    born = rng.randrange(1500, 1900)
    return {
        "_id": str(i), "id": i, "title": catalog_title(rng), "what": rng.choice(FACETS), "when": rng.choice(_PERIODS),
        "who": f"Maker {rng.randrange(5000)}", "date": str(born), "medium": rng.choice(_MEDIA),
        "accession number": f"S{i // 1000}.{i % 1000}", "credit line": "Synthetic record for the scale bench",
        "image": f"images/{image}",
    }


def generate(out: Path, records: int, *, images: int = 2000, seed: int = 0) -> Synthetic:
    """Write ``records`` Met-shaped records and ``images`` photos under ``out``."""
    if records < 1 or images < 1:
        raise ValueError(f"records and images must be >= 1, got {records} and {images}")
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    names = write_images(out / "images", images, seed=seed)
    rng = random.Random(seed)
    path = out / "records.jsonl"
    dumps = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
    with path.open("w", encoding="utf-8") as fh:
        for first in range(0, records, CHUNK):
            chunk = range(first, min(first + CHUNK, records))
            fh.write("\n".join(dumps(_record(i, rng, names[i % len(names)])) for i in chunk) + "\n")
    return Synthetic(path, out / "images", records, time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for records.jsonl and images/")
    parser.add_argument("--records", type=int, default=1_000_000, help="records to write (default 1,000,000)")
    parser.add_argument("--images", type=int, default=2000, help="distinct photos, reused round-robin (default 2000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    made = generate(args.out, args.records, images=args.images, seed=args.seed)
    print(f"{made.count:,} records in {made.records} ({made.seconds:.1f} s); photos in {made.images}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
