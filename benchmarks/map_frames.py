"""The collection map in a real headless Chromium: load time, frame time and memory at N points.

    python -m benchmarks.map_frames                      # 50,000 and 200,000 points
    python -m benchmarks.map_frames --points 50000 --screenshots docs/img

A project over the bundled demo (import, generate-images: real photos), then a map of N points
laid out in clusters, one per class (the demo's 206 objects first, the rest synthetic objects
that reuse the demo's photos), served by a real `muses serve`. In Chromium: the time from the
page's request to the map drawn, the time of one full drawing pass with every point on screen
(the cost of each pan or zoom step), the same zoomed in until the dots become photos, the time a
box selection takes, and the page's JavaScript heap (Chrome DevTools Protocol). Prints a Markdown
table; ``--screenshots DIR`` also saves the map as a curator sees it.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.web_load import DEMO, build_project
from muses.testing.net import Server

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
CLASSES = ["bust", "vessel", "medal", "miniature", "photograph", "textile"]


def write_map(project_root: Path, points: int, seed: int = 0) -> list[str]:
    """embeddings/map.json with ``points`` objects in one cluster per class; the demo's objects
    first. Returns the demo's object numbers."""
    from muses.collection.store import Store
    from muses.collection_map import map_path
    from muses.settings import Project

    project = Project.load(project_root)
    real = [(item.id, item.usable_images[0].id) for item in Store.for_project(project).items() if item.usable_images]
    rng = random.Random(seed)
    centres = [(rng.uniform(1500, 8500), rng.uniform(1500, 8500)) for _ in CLASSES]
    ids, images, xs, ys, cs, ps = [], [], [], [], [], []
    for n in range(points):
        item_id, image_id = real[n] if n < len(real) else (f"SYN.{n}", real[n % len(real)][1])
        c = n % len(CLASSES)
        cx, cy = centres[c]
        ids.append(item_id)
        images.append(image_id)
        xs.append(min(10_000, max(0, round(rng.gauss(cx, 900)))))
        ys.append(min(10_000, max(0, round(rng.gauss(cy, 900)))))
        cs.append(c)
        ps.append(rng.randint(40, 99))
    data = {"model": "synthetic", "method": "umap", "count": points, "date": "2026-12-06", "classes": CLASSES,
            "ids": ids, "images": images, "x": xs, "y": ys, "c": cs, "p": ps}
    path = map_path(project)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    return [i for i, _ in real]


def decide_some(project_root: Path, ids: list[str], n: int = 40) -> None:
    """A few reviewed objects, so the map shows its green frames and the legend its review counts."""
    from muses.collection import decisions as dec
    from muses.collection.store import Store
    from muses.settings import Project

    store = Store.for_project(Project.load(project_root))
    for item_id in ids[:n]:
        dec.record_decision(store, item_id=item_id, action=dec.NOT_ONE, reviewer="benchmark")


def measure(url: str, points: int, screenshots: Path | None, hover_id: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        start = time.perf_counter()
        page.goto(url + "/map")
        page.wait_for_function("() => window.museMap && window.museMap.ready", timeout=120_000)
        load_s = time.perf_counter() - start

        def passes(n: int = 20) -> list[float]:
            return page.evaluate(f"""() => {{ const out = [];
                for (let i = 0; i < {n}; i++) {{ const t = performance.now(); window.museMap.draw();
                  out.push(performance.now() - t); }} return out; }}""")

        full = passes()
        heap = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
        box_ms = page.evaluate("""() => { const t = performance.now();
            const c = document.getElementById('map'); const b = c.getBoundingClientRect();
            const ev = (type, x, y) => c.dispatchEvent(new PointerEvent(type, {clientX: b.left + x, clientY: b.top + y,
              shiftKey: true, bubbles: true, pointerId: 1}));
            ev('pointerdown', 300, 200); ev('pointermove', 700, 600); ev('pointerup', 700, 600);
            return performance.now() - t; }""")
        selected = page.locator("#map-selection .count").inner_text()
        if screenshots:
            page.mouse.move(*page.evaluate(f"""() => {{ const i = window.museMap.data.ids.indexOf({json.dumps(hover_id)});
                const [x, y] = window.museMap.toScreen(i); const b = document.getElementById('map').getBoundingClientRect();
                return [b.left + x, b.top + y]; }}"""))
            page.wait_for_timeout(800)  # the title comes from /api/items
            page.screenshot(path=str(screenshots / f"map-{points // 1000}k.png"))
        # zoomed in until the dots become photos, around the hovered object
        page.evaluate(f"""() => {{ const i = window.museMap.data.ids.indexOf({json.dumps(hover_id)});
            const [x, y] = window.museMap.toScreen(i); window.museMap.zoom({60 if points <= 50_000 else 120}, x, y); }}""")
        page.mouse.move(5, 5)
        page.wait_for_timeout(3000)  # the photos load
        zoomed = passes()
        if screenshots:
            page.screenshot(path=str(screenshots / f"map-{points // 1000}k-zoomed.png"))
        browser.close()
    return {"points": points, "load_s": load_s, "full": full, "zoomed": zoomed, "box_ms": box_ms,
            "selected": selected, "heap_mb": heap.get("JSHeapUsedSize", 0) / 1e6,
            "heap_total_mb": heap.get("JSHeapTotalSize", 0) / 1e6}


def table(rows: list[dict]) -> str:
    def ms(values: list[float]) -> str:
        values = sorted(values)
        return f"{statistics.median(values):.1f} / {values[int(0.95 * (len(values) - 1))]:.1f}"
    lines = ["| points | page to map drawn (s) | full pass, all on screen: median / p95 (ms) | zoomed in, photos: "
             "median / p95 (ms) | box selection (ms) | JS heap used (MB) |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['points']:,} | {r['load_s']:.1f} | {ms(r['full'])} | {ms(r['zoomed'])} | "
                     f"{r['box_ms']:.0f} ({r['selected']}) | {r['heap_mb']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, nargs="+", default=[50_000, 200_000])
    parser.add_argument("--screenshots", type=Path, help="save the map's screenshots here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = build_project(DEMO, Path(tmp) / "proj")
        for points in args.points:
            real = write_map(root, points)
            if not rows:
                decide_some(root, real)
            with Server(root) as server:
                rows.append(measure(server.base, points, args.screenshots, real[3]))
            print(table(rows[-1:]), flush=True)
    print(table(rows))


if __name__ == "__main__":
    main()
