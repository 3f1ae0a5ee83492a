"""A dataset folder drawn on the spot: the smallest real training data (no download, no store)."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def make_shapes_dataset(root: Path, *, per_class: int = 16, size: int = 64, seed: int = 0, classes=SHAPES) -> Path:
    """A dataset folder in the exporter's format (docs/CONTRACTS.md): drawn shapes in random
    colours, sizes and positions on a random background; splits per item, 60/20/20."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for cls in classes:
        for i in range(per_class):
            bg = tuple(rng.randint(150, 255) for _ in range(3))
            fg = tuple(rng.randint(0, 110) for _ in range(3))
            img = Image.new("RGB", (size, size), bg)
            draw = ImageDraw.Draw(img)
            r = rng.randint(size // 5, size // 3)
            cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
            if cls == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fg)
            elif cls == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fg)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
            name = f"images/{cls}_{i:03d}.png"
            img.save(root / name)
            split = "train" if i % 5 < 3 else ("val" if i % 5 == 3 else "test")
            rows.append({"item_id": f"{cls}-{i}", "image": name, "class": cls, "split": split, "keyword": cls, "field": "title"})
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = {"classes": list(classes), "definitions_digest": "shapes-digest", "seed": seed,
            "split": [0.6, 0.2, 0.2], "exporter": "naive", "created": "2026-01-01T00:00:00+00:00"}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root
