"""`make bench`: one table of muses' speed and memory, every row measured in the same run.

    python -m benchmarks.run            # full run (a few minutes), table also in results/DATE.md
    python -m benchmarks.run --quick    # smoke run: small settings, results/DATE-quick.md
    python -m benchmarks.run --only classify labeling

The bench builds its own temporary project (init, import the Met sample, generate-images,
export with examples/definitions.toml). Each section runs on its own: one whose dependency is
missing or broken prints "not available: <why>" and the others still run. On a shared machine
absolute numbers are noisy; rows measured side by side (torch vs ONNX, draft vs full decode,
muses vs the original recipe) are comparable as ratios.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
MET_SAMPLE = Path(os.environ.get("MUSES_MET_SAMPLE", REPO.parent / "shared" / "data" / "met-sample"))
DEFINITIONS = REPO / "examples" / "definitions.toml"
CLASS_COUNT = 5  # classes of examples/definitions.toml, used where no dataset is needed


@dataclass(frozen=True)
class Settings:
    """How much work each section does; FULL is the documented benchmark."""

    epochs: int = 50  # train-model --epochs: split 30 transfer + 20 fine-tune by muses' default
    image_size: int = 224
    views: int | None = None  # None: train-model's default
    max_images: int | None = None  # per class, in the exported dataset (None: all)
    classify_images: int = 128
    batch1_images: int = 32
    vgg_batch: int = 32
    vgg_batches: int = 2  # measured batches of the original recipe (after one warm-up)
    labeling_records: int = 200_000
    labeling_repeat: int = 3
    import_records: int = 20_000
    large_jpegs: int = 40
    large_side: int = 3200
    predict_images: int = 16
    seed: int = 0


FULL = Settings()
QUICK = Settings(epochs=3, views=1, max_images=10, classify_images=32, batch1_images=8, vgg_batch=8, vgg_batches=1,
                 labeling_records=20_000, labeling_repeat=1, import_records=1_000, large_jpegs=4, predict_images=4)


@dataclass
class Row:
    what: str
    value: str
    target: str = ""
    met: bool | None = None
    note: str = ""


class Unavailable(Exception):
    """A section cannot run here; the message says why."""


@dataclass
class Bench:
    """The shared state of one run: settings, the scratch folder, and artifacts built once."""

    settings: Settings
    workdir: Path
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    _made: dict = field(default_factory=dict)

    def once(self, key: str, make: Callable[[], object]):
        """``make()`` the first time; its result (or its failure) afterwards."""
        if key not in self._made:
            try:
                self._made[key] = make()
            except Unavailable as exc:
                self._made[key] = exc
            except Exception as exc:  # noqa: BLE001 - a broken part of muses is reported, not fatal
                self._made[key] = Unavailable(f"{key} failed: {type(exc).__name__}: {exc}")
        if isinstance(self._made[key], Unavailable):
            raise self._made[key]
        return self._made[key]

    def met_project(self):
        return self.once("met project", self._make_met_project)

    def _make_met_project(self):
        try:
            import muses
            from muses.settings import Project, init_project
        except ImportError as exc:
            raise Unavailable(f"{exc.name} is not built yet") from exc
        if not (MET_SAMPLE / "records.jsonl").is_file():
            raise Unavailable(f"no Met sample at {MET_SAMPLE} (set MUSES_MET_SAMPLE)")
        root = self.workdir / "met-project"
        init_project(root)
        shutil.copy(DEFINITIONS, root / "definitions.toml")
        project = Project.load(root)
        _upgrade_store(project)  # a kept --workdir made by an older muses: the bench's own scratch store
        self.log("  met project: import, generate-images, export")
        muses.import_collection(project, muses.ImportConfig(MET_SAMPLE / "records.jsonl", preset="met-scrapi"))
        muses.check_photos(project, muses.CheckPhotosConfig(workers=0))
        muses.export_dataset(project, muses.ExportConfig(seed=self.settings.seed, max_images=self.settings.max_images))
        return project

    def lite0_model(self) -> Path:
        """A Lite0 model file (ImageNet weights, untrained head): throughput needs no training."""
        return self.once("Lite0 model file", self._make_lite0_model)

    def _make_lite0_model(self) -> Path:
        from muses.model.backbones import default_preprocess
        from muses.model.classifier import new_classifier

        pre = default_preprocess("tf_efficientnet_lite0", self.settings.image_size)
        clf = new_classifier("tf_efficientnet_lite0", [f"class{i}" for i in range(CLASS_COUNT)], pre, seed=self.settings.seed,
                             device="cpu")
        return clf.save(self.workdir / "models" / "bench")

    def met_photos(self, n: int) -> list[Path]:
        photos = sorted((MET_SAMPLE / "images").glob("*.jpg"))
        if not photos:
            raise Unavailable(f"no Met sample photos in {MET_SAMPLE / 'images'}")
        return (photos * math.ceil(n / len(photos)))[:n]


# -- measuring ---------------------------------------------------------------------------------
def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` calls (the least disturbed one on a shared machine)."""
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class ChildRun:
    seconds: float
    cpu_seconds: float  # user + system, its finished child processes included
    peak_mb: float
    returncode: int
    output: str


# Linux carries a process's peak RSS across fork+exec, so a child forked from this (large)
# process would report at least our own size. A small launcher forks the measured command
# from its own small memory and reports that child's wait4 figures on its last line.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:])
_, status, usage = os.wait4(proc.pid, 0)
cpu = usage.ru_utime + usage.ru_stime
print(f"@@launcher {time.perf_counter() - start} {cpu} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}", flush=True)
"""


def run_child(args: list[str], *, cwd: Path | None = None) -> ChildRun:
    """Run ``python args...``; its wall time, CPU time and peak RSS (of that process alone)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as out:
        subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, *args], stdout=out,
                       stderr=subprocess.STDOUT, cwd=cwd, env=env, check=False)
        out.seek(0)
        output = out.read().decode("utf-8", "replace")
    output, _, stats = output.rpartition("@@launcher ")
    seconds, cpu_seconds, max_rss_kib, returncode = stats.split()
    return ChildRun(float(seconds), float(cpu_seconds), int(max_rss_kib) / 1024, int(returncode), output)


def _rate(n: float, seconds: float, unit: str) -> str:
    return f"{n / seconds:,.1f} {unit}/s" if seconds > 0 else "n/a"


def _check_child(run: ChildRun, what: str) -> None:
    if run.returncode != 0:
        tail = run.output.strip().splitlines()[-1:] or ["(no output)"]
        raise Unavailable(f"{what} exited with {run.returncode}: {tail[0][:200]}")


# -- sections ----------------------------------------------------------------------------------
def section_train(b: Bench) -> list[Row]:
    """Time to a trained model with muses' defaults, its test macro-F1 and the run's peak RSS."""
    project = b.met_project()
    s = b.settings
    transfer, fine = _epochs(s)
    args = ["-m", "muses", "train-model", "--project", str(project.root), "--epochs", str(s.epochs),
            "--image-size", str(s.image_size), "--seed", str(s.seed), "--model-name", "bench"]
    if s.views:
        args += ["--views", str(s.views)]
    b.log(f"  train-model: {transfer} transfer + {fine} fine-tune epochs at {s.image_size} px")
    run = run_child(args)
    _check_child(run, "muses train-model")
    f1, ece, n_test = _test_scores(project, project.models_dir / "bench.safetensors", b.workdir / "evaluation")
    full = s.epochs == 50 and s.image_size == 224
    return [
        Row(f"time to a trained model: muses (Lite0, {s.image_size} px, {transfer}+{fine} epochs)", f"{run.seconds:.0f} s",
            "< 180 s for 50 epochs at 224 px", (run.seconds < 180) if full else None,
            f"whole `muses train-model` command, start-up and feature caching included; {run.cpu_seconds:.0f} CPU s "
            "(user + system, data-loader workers included): less sensitive to other work on the machine"),
        Row("  macro-F1 on the test split (muses)", f"{f1:.3f} ({n_test} images)"),
        Row("  calibration error (ECE, 10 bins) on the test split (muses)", f"{ece:.3f} ({n_test} images)",
            note="how far the model's stated confidence is from how often it is right; make bench-quality measures it over 5 folds"),
        Row("peak RSS: train-model", f"{run.peak_mb:,.0f} MB", "<= 3 GB", run.peak_mb <= 3072,
            "main process (os.wait4); data-loader workers are separate processes"),
    ]


def _test_scores(project, model: Path, out: Path) -> tuple[float, float, int]:
    """Macro-F1 and expected calibration error of ``model`` on the dataset's test split, as
    `muses evaluate` measures them."""
    import muses

    plain = muses.evaluate(project, muses.EvaluateConfig(model=model, out=out)).plain
    return plain.macro_f1, plain.ece, plain.n


def section_original(b: Bench) -> list[Row]:
    """The original CLEO recipe's cost: VGG19 at 128 px, full forward+backward every epoch.

    Random weights: only the shape of the compute matters here. Too slow to run to the end on
    a CPU, so a few batches are measured and the epochs extrapolated from them.
    """
    import torch
    from torch import nn
    from torchvision.models import vgg19

    from muses.datasets.folder import read_dataset

    project = b.met_project()
    s = b.settings
    ds = read_dataset(project.datasets_dir / "naive")
    n_train, n_val = len(ds.split("train")), len(ds.split("val"))
    torch.manual_seed(s.seed)
    net = nn.Sequential(vgg19(weights=None).features, nn.Flatten(1), nn.Linear(512 * 4 * 4, 256), nn.ReLU(),
                        nn.Linear(256, len(ds.classes)))
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(s.vgg_batch, 3, 128, 128)
    y = torch.randint(0, len(ds.classes), (s.vgg_batch,))

    def train_step():
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()

    def eval_step():
        with torch.inference_mode():
            net(x)

    b.log(f"  original recipe: VGG19 128 px, {s.vgg_batches} measured batches of {s.vgg_batch}")
    net.train()
    train_step()  # warm-up
    cpu_start = time.process_time()
    per_image_train = timed(train_step, s.vgg_batches) / s.vgg_batch
    cpu_train = (time.process_time() - cpu_start) / (s.vgg_batches * s.vgg_batch)
    net.eval()
    cpu_start = time.process_time()
    per_image_eval = timed(eval_step, 1) / s.vgg_batch
    cpu_eval = (time.process_time() - cpu_start) / s.vgg_batch
    transfer, fine = _epochs(s)
    epochs = transfer + fine
    total = epochs * (n_train * per_image_train + n_val * per_image_eval)
    total_cpu = epochs * (n_train * cpu_train + n_val * cpu_eval)
    return [
        Row(f"time to a trained model: original recipe (VGG19, 128 px, {transfer}+{fine} epochs)", f"{total:.0f} s",
            note=f"extrapolated from {s.vgg_batches} measured batch(es) of {s.vgg_batch}: {n_train} train images "
                 f"forward+backward and {n_val} val images forward per epoch, {total_cpu:.0f} CPU s; random weights "
                 "(the shape of the compute is what matters); data loading not counted"),
        Row("  macro-F1 on the test split (original)", "n/a (not run to the end)"),
    ]


def _epochs(s: Settings) -> tuple[int, int]:
    from muses import TrainCfg

    transfer, *fine = TrainCfg(epochs=s.epochs).phases()
    return transfer.epochs, sum(p.epochs for p in fine)


def section_classify(b: Bench) -> list[Row]:
    """Images/s from JPEG files on disk (decode + preprocess + model) next to model-only
    and loading-only throughput, torch vs ONNX Runtime, batch 1 and 32."""
    import numpy as np
    import torch

    from muses.model.classifier import Classifier
    from muses.model.image_loading import iter_batches
    from muses.model.onnx import load_onnx
    from muses.model.onnx_export import export_onnx

    s = b.settings
    model = b.lite0_model()
    photos = b.met_photos(s.classify_images)
    b.log("  classify: ONNX export")
    export_seconds = timed(lambda: export_onnx(model))
    torch_clf = Classifier.load(model, device="cpu")
    onnx_clf = load_onnx(model, reexport=False)
    size = torch_clf.cfg.input_size
    rows = [Row("ONNX export (once per trained model)", f"{export_seconds:.1f} s")]
    for batch, paths in ((32, photos), (1, photos[: s.batch1_images])):
        x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
        xt = torch.from_numpy(x)
        n_model = max(1, len(paths) // batch)

        def torch_model_only():
            with torch.inference_mode():
                for _ in range(n_model):
                    torch_clf.net(xt)

        def onnx_model_only():
            for _ in range(n_model):
                onnx_clf.session.run(None, {"image": x})

        b.log(f"  classify: batch {batch}, {len(paths)} photos")
        for clf in (torch_clf, onnx_clf):  # warm-up: first calls allocate and plan
            clf.predict_new(paths[:batch], batch_size=batch)
        e2e_torch = timed(lambda: torch_clf.predict_new(paths, batch_size=batch))
        e2e_onnx = timed(lambda: onnx_clf.predict_new(paths, batch_size=batch))
        rows += [
            Row(f"classify end to end, torch, batch {batch}", _rate(len(paths), e2e_torch, "images"),
                note="JPEG files on disk (the Met sample's 480 px photos): decode + preprocess + model"),
            Row(f"classify end to end, ONNX, batch {batch}", _rate(len(paths), e2e_onnx, "images"),
                ">= 50 images/s" if batch == 32 else "", (len(paths) / e2e_onnx >= 50) if batch == 32 else None),
            Row(f"  model only, torch, batch {batch}", _rate(n_model * batch, timed(torch_model_only), "images")),
            Row(f"  model only, ONNX, batch {batch}", _rate(n_model * batch, timed(onnx_model_only), "images")),
        ]
        if batch == 32:
            rows.append(_channels_last_row(torch_clf.net, xt, n_model))
    rows.append(_ml_copies_row(b, onnx_clf, len(photos)))
    for workers, label in ((None, f"{os.cpu_count()} threads"), (0, "1 thread")):
        seconds = timed(lambda: [None for _ in iter_batches(photos, torch_clf.cfg.preprocess, 32, workers=workers)], 2)
        rows.append(Row(f"  loading only (decode + preprocess), {label}", _rate(len(photos), seconds, "images")))
    return rows


def _ml_copies_row(b: Bench, onnx_clf, n: int) -> Row:
    """The same, from generate-images' ML-size copies (Image.stored_path): what `muses classify` reads."""
    what = "classify end to end, ONNX, batch 32, ML-size copies"
    try:
        from muses.collection.store import USABLE_STATUSES, Store

        project = b.met_project()
    except (ImportError, Unavailable) as exc:
        return Row(what, f"not available: {exc}")
    copies = [project.path(im.stored_path) for im in Store.for_project(project).images(USABLE_STATUSES)]
    copies = (copies * math.ceil(n / max(1, len(copies))))[:n]
    seconds = timed(lambda: onnx_clf.predict_new(copies, batch_size=32))
    side = project.settings.images.max_side
    return Row(f"{what} ({side} px)", _rate(len(copies), seconds, "images"))


def section_classify_command(b: Bench) -> list[Row]:
    """`muses classify` itself over the Met project: store reads and writes included."""
    try:
        import muses
    except ImportError as exc:
        raise Unavailable(f"{exc.name} is not built yet") from exc
    from muses.model.onnx import is_current
    from muses.model.onnx_export import export_onnx

    project = b.met_project()
    model = b.lite0_model()
    if not is_current(model):
        export_onnx(model)
    rows = []
    for runtime in ("onnx", "torch"):
        b.log(f"  muses classify --runtime {runtime}")
        start = time.perf_counter()
        config = muses.ClassifyConfig(model=model, runtime=runtime, update_existing=True)
        report = muses.classify_collection(project, config, progress=False).report
        seconds = time.perf_counter() - start
        rows.append(Row(f"muses classify, {runtime} ({len(report.classified)} Met items, ML-size copies)",
                        _rate(len(report.classified), seconds, "items"),
                        note="the classify action: model loading, store reads, decoding, model, one "
                             "transaction per batch"))
    return rows


def _channels_last_row(net, x, n_model: int) -> Row:
    import copy

    import torch

    cl_net = copy.deepcopy(net).to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            for _ in range(n_model):
                cl_net(xc)

    run()  # warm-up: oneDNN picks its kernels on the first call
    return Row("  model only, torch channels_last, batch 32", _rate(n_model * len(x), timed(run), "images"),
               note="not used by muses' torch path unless it pays; compare with the row above")


def section_labeling(b: Bench) -> list[Row]:
    try:
        from benchmarks.labeling import run as run_labeling
    except ImportError as exc:
        raise Unavailable(f"benchmarks.labeling: {exc}") from exc
    n = b.settings.labeling_records
    b.log(f"  labeling: {n:,} synthetic records")
    result = run_labeling(n, repeat=b.settings.labeling_repeat)
    rate = result["records_per_s"]
    return [Row(f"naive labeling ({n:,} synthetic records)", f"{rate:,} records/s", ">= 100,000 records/s",
                rate >= 100_000, f"best of {b.settings.labeling_repeat} pass(es); benchmarks/labeling.py")]


def _write_jsonl(path: Path, records: list[dict]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return path


def _fresh_project(b: Bench, name: str):
    from muses.settings import Project, init_project

    root = b.workdir / name
    init_project(root)
    return Project.load(root)


def section_import(b: Bench) -> list[Row]:
    try:
        import muses
    except ImportError as exc:
        raise Unavailable(f"{exc.name} is not built yet") from exc
    n = b.settings.import_records
    met = [json.loads(line) for line in (MET_SAMPLE / "records.jsonl").read_text(encoding="utf-8").splitlines() if line]
    records = []
    for i in range(n):
        record = dict(met[i % len(met)])
        record["id"] = f"{record['id']}-{i // len(met)}"
        record["image"] = str(MET_SAMPLE / record["image"])
        records.append(record)
    path = _write_jsonl(b.workdir / "import.jsonl", records)
    project = _fresh_project(b, "import-project")
    b.log(f"  import: {n:,} records")
    config = muses.ImportConfig(path, preset="met-scrapi", image_roots=(MET_SAMPLE,))
    seconds = timed(lambda: muses.import_collection(project, config))
    return [Row(f"import ({n:,} Met records, JSONL, SQLite)", _rate(n, seconds, "records"),
                note="the Met sample replicated under new ids, through the import action (report file included)")]


def _large_jpegs(b: Bench) -> list[Path]:
    import numpy as np
    from PIL import Image

    s = b.settings
    folder = b.workdir / "large"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(s.seed)
    h, w = s.large_side * 3 // 4, s.large_side
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    paths = []
    for i in range(s.large_jpegs):
        # smooth colour fields + grain: compresses like a photo, not like noise or a flat fill
        a, c = rng.uniform(0.5, 3, 2), rng.uniform(0, 255, 3)
        base = 127 + 100 * np.sin(xx / w * a[0] * np.pi + i) * np.cos(yy / h * a[1] * np.pi)
        img = np.stack([(base + c[k]) % 256 for k in range(3)], axis=-1)
        img += rng.normal(0, 6, (h, w, 1))
        path = folder / f"large_{i:03d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def section_generate_images(b: Bench) -> list[Row]:
    try:
        import muses
    except ImportError as exc:
        raise Unavailable(f"{exc.name} is not built yet") from exc
    from PIL import Image

    from muses.imaging import open_image

    s = b.settings
    b.log(f"  generate-images: making {s.large_jpegs} JPEGs of {s.large_side} px")
    paths = b.once("large JPEGs", lambda: _large_jpegs(b))
    records = [{"id": f"large-{i}", "title": "Test photo", "image": str(p)} for i, p in enumerate(paths)]
    project = _fresh_project(b, "large-project")
    muses.import_collection(project, muses.ImportConfig(_write_jsonl(b.workdir / "large.jsonl", records), format="jsonl"))
    report = muses.check_photos(project, muses.CheckPhotosConfig(workers=0)).report
    if report.processed != len(paths):
        raise Unavailable(f"generate-images processed {report.processed} of {len(paths)} images")
    max_side = project.settings.images.max_side

    def full_decode():
        for p in paths:
            with Image.open(p) as img:
                img.convert("RGB").thumbnail((max_side, max_side))

    def draft_decode():
        for p in paths:
            open_image(p, max_side).thumbnail((max_side, max_side))

    b.log("  generate-images: draft vs full decode")
    full, draft = timed(full_decode), timed(draft_decode)
    return [
        Row(f"generate-images ({len(paths)} JPEGs of {s.large_side}x{s.large_side * 3 // 4} px)",
            _rate(len(paths), report.seconds, "images"), note=f"{report.workers} worker processes, ML-size copies of {max_side} px"),
        Row(f"  decode to {max_side} px, one thread: JPEG draft mode", _rate(len(paths), draft, "images")),
        Row(f"  decode to {max_side} px, one thread: full decode + resize", _rate(len(paths), full, "images"),
            note=f"draft mode is {full / draft:.1f}x faster here"),
    ]


def section_predict_memory(b: Bench) -> list[Row]:
    """Peak RSS and wall time of `muses predict` on a few photos, torch vs ONNX (the default)."""
    from muses.settings import init_project
    from muses.model.files import paths as model_paths
    from muses.model.onnx import onnx_path_for
    from muses.model.onnx_export import export_onnx

    model = b.lite0_model()
    photos = [str(p) for p in b.met_photos(b.settings.predict_images)]
    root = b.workdir / "predict-project"
    init_project(root)
    rows = []
    for runtime in ("torch", "onnx"):
        folder = b.workdir / f"predict-{runtime}"
        folder.mkdir(exist_ok=True)
        for src in model_paths(model):
            shutil.copy(src, folder / src.name)
        copy = folder / model.name
        if runtime == "onnx":
            source = onnx_path_for(model)
            if source.is_file():
                shutil.copy(source, onnx_path_for(copy))
            else:
                export_onnx(copy)
        b.log(f"  predict ({runtime}): {len(photos)} photos in a subprocess")
        run = run_child(["-m", "muses", "predict", *photos, "--model", str(copy), "--project", str(root), "--json",
                         "--runtime", runtime])
        _check_child(run, f"muses predict ({runtime})")
        rows.append(Row(f"peak RSS: predict {len(photos)} photos, {runtime}", f"{run.peak_mb:,.0f} MB",
                        note=f"whole command in {run.seconds:.1f} s, start-up included"))
    return rows


def section_web_load(b: Bench) -> list[Row]:
    """`muses serve` (its default workers: one per core) under 50 concurrent clients on loopback
    (benchmarks/web_load.py), on the Met project; classified first when no earlier section did,
    so filters, sorts and similar objects have the model's answers to work with."""
    from benchmarks.web_load import meets_target
    from benchmarks.web_load import run as run_web_load
    import muses
    from muses.collection.store import Store

    requests = 2000 if b.settings.epochs >= 10 else 100  # tiny settings: the harness check only
    project = b.met_project()
    if not Store.for_project(project).stats()["items_classified"]:
        b.log("  web load: classify the Met project first")
        muses.classify_collection(project, muses.ClassifyConfig(model=b.lite0_model()), progress=False)
    results = run_web_load(project.root, mixes=["browse", "item", "similar", "mixed"], requests=requests,
                           concurrency=50, log=b.log)
    what = {"similar": "similar objects (/api/similar)", "mixed": "mixed requests"}
    return [Row(f"web {what.get(r.mix, r.mix + ' pages')}, {r.requests} requests, 50 clients",
                f"{r.rate:,.0f} req/s, p50 {r.percentile(.5):.0f} ms, p95 {r.percentile(.95):.0f} ms",
                ">= 200 req/s, p95 <= 300 ms" if meets_target(r) is not None else "", meets_target(r) if b.settings.epochs >= 10 else None,
                f"{r.errors} errors; load generator on the same 2 cores") for r in results]


SECTIONS: dict[str, Callable[[Bench], list[Row]]] = {
    "train": section_train,
    "original": section_original,
    "classify": section_classify,
    "classify-command": section_classify_command,
    "labeling": section_labeling,
    "import": section_import,
    "generate-images": section_generate_images,
    "predict-memory": section_predict_memory,
    "web-load": section_web_load,
}


# -- the table ---------------------------------------------------------------------------------
def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in ("torch", "onnxruntime", "timm", "PIL"):
        try:
            module = __import__(name)
            versions.append(f"{'Pillow' if name == 'PIL' else name} {module.__version__}")
        except ImportError:
            versions.append(f"{name} not installed")
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return [f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()} {platform.machine()}",
            f"software: Python {platform.python_version()}, {', '.join(versions)}",
            f"load average at start: {load} (other work on the machine makes absolute numbers noisy)"]


def format_rows(rows: list[Row]) -> str:
    notes: list[str] = []
    body = []
    for row in rows:
        what = row.what
        if row.note:
            if row.note not in notes:
                notes.append(row.note)
            what += f" [{notes.index(row.note) + 1}]"
        met = "" if row.met is None else ("met" if row.met else "NOT met")
        body.append([what, row.value, row.target, met])
    headers = ["what", "value", "target", "met?"]
    widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in [headers, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [""] + [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(lines)


def run(settings: Settings = FULL, *, only: list[str] | None = None, workdir: Path | None = None,
        log: Callable[[str], None] | None = None) -> list[Row]:
    """Run the sections (all, or ``only``) and return their rows; never raises for a section."""
    unknown = sorted(set(only or []) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    with tempfile.TemporaryDirectory(prefix="muses-bench-") as tmp:
        bench = Bench(settings, Path(workdir or tmp))
        if log is not None:
            bench.log = log
        rows: list[Row] = []
        for name, section in SECTIONS.items():
            if only and name not in only:
                continue
            bench.log(f"== {name}")
            start = time.perf_counter()
            try:
                rows += section(bench)
            except Unavailable as exc:
                rows.append(Row(name, f"not available: {exc}"))
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
                rows.append(Row(name, f"not available: {type(exc).__name__}: {exc}"))
            bench.log(f"   ({time.perf_counter() - start:.0f} s)")
    return rows


def _upgrade_store(project) -> None:
    from muses.collection import schema
    from muses.collection.store import Store

    store = Store.for_project(project, check_schema=False)
    schema.upgrade(store.engine, name=store.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + __doc__.split("\n\n")[1] + "\n\nsections: " + ", ".join(SECTIONS),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small settings: a smoke run of every section")
    parser.add_argument("--only", nargs="+", metavar="SECTION", choices=list(SECTIONS), help="run these sections only")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help="where the table is written as DATE.md (default benchmarks/results)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dataset split, training and test data (default 0)")
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else FULL, seed=args.seed)
    header = machine()
    started = time.perf_counter()
    rows = run(settings, only=args.only)
    mode = "quick (smoke settings; targets not judged where the settings differ)" if args.quick else "full"
    text = "\n".join([*header, f"mode: {mode}; whole bench {time.perf_counter() - started:.0f} s", "", format_rows(rows)])
    print(text)
    args.results.mkdir(parents=True, exist_ok=True)
    stem = dt.date.today().isoformat() + ("-quick" if args.quick else "") + ("-partial" if args.only else "")
    out = args.results / f"{stem}.md"
    out.write_text(f"# muses benchmark, {dt.date.today().isoformat()}\n\n```\n{text}\n```\n", encoding="utf-8")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
