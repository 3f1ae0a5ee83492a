"""`muses train-model` and `muses predict`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.cli.engines import add_compute_args, compute_from_args
from muses.model import RUNTIMES
from muses.imaging import MAX_PIXELS  # no torch: cheap enough for --help
from muses.settings import find_project

TRAIN_EXAMPLES = """\
  muses train-model --model-name naive --epochs 50 --plot-performance
  muses train-model --epochs 20 --no-fine-tuning                 # head only: fastest
  muses train-model --epochs 50 --unfrozen-blocks 2 --fine-tune-lr 1e-4
  muses train-model --backbone vgg19 --weights weights/vgg19.safetensors --image-size 224
  muses train-model --epochs 50 --resume                          # after Ctrl-C or a crash
  muses train-model --epochs 50 --nproc 4                         # 4 processes (GPUs), DDP
  torchrun --nproc_per_node 4 -m muses train-model --epochs 50    # the same, started by torchrun
  muses train-model --epochs 50 --engine ray --ray-workers 4      # frozen features extracted on Ray

The epochs are split 60/40 between transfer learning (only the new head trains, on cached
backbone features: seconds) and fine-tuning (the last --unfrozen-blocks blocks of the
backbone train too); --no-fine-tuning spends them all on transfer learning. EfficientNet
blocks: the 7 stages of model.blocks, then conv_head+bn2 (the last); BatchNorm stays frozen.
Writes models/NAME.safetensors + models/NAME.json (and plots/NAME_performance.png).
"""

PREDICT_EXAMPLES = """\
  muses predict photo.jpg
  muses predict front.jpg back.jpg --object          # two photos of one object: one answer
  muses predict *.jpg --top-k 3 --json --model models/naive.safetensors
  muses predict huge_scan.tif --max-pixels 200000000   # allow a photo larger than the default limit

A photo that cannot be read, or has more than --max-pixels pixels, is listed as skipped with
the reason; the other photos are still answered (exit code 2 when any was skipped).
"""


def register(subparsers) -> None:
    p = command_parser(subparsers, "train-model", help="train the classifier on a dataset folder", examples=TRAIN_EXAMPLES)
    p.add_argument("--model-name", help="file name in the models folder (default: the stem of muses.toml's model_path)")
    p.add_argument("--epochs", type=positive(int), default=50, help="total epochs (default 50)")
    p.add_argument("--plot-performance", action="store_true", help="write plots/NAME_performance.png")
    p.add_argument("--fine-tuning", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tune the backbone tail after transfer learning (default: yes)")
    p.add_argument("--unfrozen-blocks", "--fine-tune-layers", dest="unfrozen_blocks", type=positive(int), default=4,
                   help="backbone blocks to fine-tune, counted from the last (default 4); --fine-tune-layers is "
                        "its old name")
    p.add_argument("--fine-tune-lr", type=positive(float), default=5e-5, help="learning rate when fine-tuning (default 5e-5)")
    p.add_argument("--lr", type=positive(float), default=1e-3, help="learning rate of transfer learning (default 1e-3)")
    p.add_argument("--decay", type=float, default=0.0, help="learning-rate decay per step, lr/(1+decay*step) (default 0)")
    p.add_argument("--dropout", type=float, default=0.2, help="dropout before the linear head (default 0.2)")
    p.add_argument("--backbone", help="any timm model name (default: muses.toml [training] backbone)")
    p.add_argument("--weights", type=Path, metavar="FILE", help="pretrained weights (.safetensors or .pth) for --backbone")
    p.add_argument("--no-pretrained", action="store_true", help="train from random weights, on purpose")
    p.add_argument("--image-size", type=positive(int), help="input size in pixels (default: muses.toml [training] image_size)")
    p.add_argument("--resize-mode", choices=("squash", "pad", "crop"), default="squash",
                   help="how photos become squares (default squash; pad keeps the whole object)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="dataset folder (default: datasets/naive)")
    p.add_argument("--batch-size", type=positive(int), default=32, help="default 32")
    p.add_argument("--views", type=positive(int), default=4, help="augmented views cached per training image (default 4)")
    p.add_argument("--early-stopping", type=positive(int), metavar="N",
                   help="stop a phase after N epochs without validation improvement, keeping its best epoch")
    p.add_argument("--label-smoothing", type=float, default=0.1, metavar="S",
                   help="share of each label spread over the other classes, so that the model does not learn "
                        "to be 100 %% sure (default 0.1, measured by `make bench-quality`; 0 for none)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--workers", type=int, help="image decoding processes (default: up to 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--nproc", type=positive(int), default=1, metavar="N",
                   help="train in N processes (DistributedDataParallel; one per GPU, or gloo on CPU) (default 1)")
    add_compute_args(p)
    p.set_defaults(func=run_train)

    p = command_parser(subparsers, "predict", help="classify new photos with a trained model", examples=PREDICT_EXAMPLES)
    p.add_argument("images", nargs="+", type=Path, metavar="IMG")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--top-k", type=positive(int), default=5, help="classes shown per answer (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--object", action="store_true", help="the photos show one object: average them into one answer")
    p.add_argument("--max-pixels", type=positive(int), default=MAX_PIXELS, metavar="N",
                   help=f"photos with more pixels are skipped, unread (default {MAX_PIXELS:,})")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto (default): ONNX Runtime, fast, exporting NAME.onnx once if missing; torch: the slow reference")
    p.set_defaults(func=run_predict)


def run_train(args) -> int:
    from muses.compute import require_ray
    from muses.model import distributed

    if compute_from_args(args).uses_ray:
        if args.nproc > 1 or distributed.from_env().active:
            raise UsageError("--engine ray extracts the features on a Ray cluster; --nproc trains in several "
                             "processes here: use one of them (or --engine local with --nproc)")
        require_ray()  # before minutes of setting up: say what to install first
    if args.nproc > 1 and not distributed.from_env().active:
        return distributed.launch(args.nproc, _without_nproc(sys.argv[1:]))
    device = distributed.setup(args.device)  # under torchrun: join the run, take this process's GPU
    try:
        return _train(args, device, main=distributed.from_env().main)
    finally:
        distributed.teardown()


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line again for each torchrun process, less --nproc."""
    if "train-model" not in argv:
        raise UsageError("--nproc works from the command line: muses train-model --nproc N ...")
    out, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        skip = arg == "--nproc"
        if not skip:
            out.append(arg)
    return out


def _train(args, device: str, *, main: bool) -> int:
    from muses.model.loading import setup_classifier
    from muses.model.training import default_phases

    project = find_project(args.project)
    name = args.model_name or project.model_path.stem
    if not name or Path(name).name != name:
        raise UsageError(f"--model-name must be a plain file name, got {name!r}")
    phases = default_phases(args.epochs, fine_tuning=args.fine_tuning, unfrozen_blocks=args.unfrozen_blocks,
                            lr=args.lr, fine_tune_lr=args.fine_tune_lr, decay=args.decay)
    t0 = time.perf_counter()
    try:
        clf = setup_classifier(
            args.image_size or project.settings.training.image_size,
            mode="train",
            dataset=args.dataset,
            backbone=args.backbone or project.settings.training.backbone,
            weights=args.weights,
            pretrained=not args.no_pretrained,
            resize_mode=args.resize_mode,
            dropout=args.dropout,
            seed=args.seed,
            project=project,
            device=device,
            batch_size=args.batch_size,
            views=args.views,
            workers=args.workers,
            early_stopping=args.early_stopping,
            restore_best=args.early_stopping is not None,
            label_smoothing=args.label_smoothing,
            compute=compute_from_args(args),
        )
        if args.fine_tuning and args.unfrozen_blocks > clf.num_blocks:
            raise UsageError(f"--unfrozen-blocks: {clf.cfg.backbone} has {clf.num_blocks} blocks, got {args.unfrozen_blocks}")
        for image, why in clf.dataset.skipped:
            print(f"skipped {image}: {why}")
        history = clf.fit(phases, model_name=name, resume=args.resume, save=main)  # one process writes the model
        if not main:
            return 0
    except KeyboardInterrupt:
        print("training interrupted; the last finished epoch is checkpointed: run the same command "
              "with --resume to continue", file=sys.stderr)
        raise
    seconds = time.perf_counter() - t0
    print(format_table(["phase", "epochs", "train acc", "val acc", "val macro-F1", "seconds"], _phase_rows(phases, history)))
    out = clf.output_dir() / f"{name}.safetensors"
    print(f"model: {out} (+ .json), {len(clf.class_names)} classes, {len(clf.dataset.samples)} images, {seconds:.0f} s in all")
    print(_validation_caveat(len(clf.dataset.split("val"))))
    print(_calibration_words(clf.cfg))
    print(_write_runtime_files(out))
    if args.plot_performance:
        print(f"plot: {clf.plot_performance(project.plots_dir / f'{name}_performance.png')}")
    if out.resolve() != project.model_path.resolve():
        rel = out.relative_to(project.root) if out.is_relative_to(project.root) else out
        print(f'to make it the default model, set in muses.toml:\n  [classification.naive_classification]\n  model_path = "{rel}"')
    print("next: muses evaluate   (how good the model is on photos it has not seen)")
    return 0


def _validation_caveat(n_val: int) -> str:
    """How far the "val acc" column can be trusted: it rests on the validation photos alone."""
    text = f"val acc rests on {n_val} photos (the validation split)"
    if n_val < 50:
        text += ("; with so few, one photo moves it by more than 2 points: a rough guide only, "
                 "`muses evaluate` measures the test split")
    return text


def _calibration_words(cfg) -> str:
    if cfg.temperature == 1.0 and cfg.threshold == 0.0:
        return "calibration: none (the dataset has no validation photos); answers are never marked uncertain"
    return (f"calibration on the validation photos: temperature {cfg.temperature:.2f}; answers below "
            f"{cfg.threshold:.0%} are shown as uncertain. Check them with `muses evaluate`.")


def _write_runtime_files(model: Path) -> str:
    from muses.model.onnx import OnnxError
    from muses.model.onnx_export import write_runtime_files

    print("writing the ONNX file for fast prediction (10 to 30 seconds)...", file=sys.stderr, flush=True)
    try:
        return f"fast runtime: {write_runtime_files(model)} (predict, classify and serve use it)"
    except OnnxError as exc:
        return f"note: {exc}; until then predictions use torch (slower)"


def _phase_rows(phases, history: list[dict]) -> list[list]:
    rows = []
    for index, phase in enumerate(phases):
        done = [h for h in history if h["phase"] == index]
        if done:
            last = done[-1]
            kind = "transfer" if phase.unfrozen_blocks == 0 else f"fine-tune ({phase.unfrozen_blocks} blocks)"
            rows.append([
                kind, len(done), f"{last['train_accuracy']:.3f}", f"{last.get('val_accuracy', float('nan')):.3f}",
                f"{last.get('val_f1', float('nan')):.3f}", f"{sum(h['seconds'] for h in done):.1f}",
            ])
    return rows


def load_for_command(project, model: Path | None, runtime: str = "auto"):
    """The model of ``--model`` (default: muses.toml's), its warnings printed on stderr (stdout
    may be JSON); the one way every command loads the model."""
    from muses.model.loading import open_model

    print(f"loading the model {model or project.model_path} ...", file=sys.stderr, flush=True)
    predictor, notes = open_model(model, runtime, project=project)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return predictor


def run_predict(args) -> int:
    from muses.model.image_loading import load_images
    from muses.predictions import answer, mean_probabilities, ranked

    project = find_project(args.project)
    clf = load_for_command(project, args.model, args.runtime)
    images, kept, failed = load_images(args.images, clf.cfg.input_size, max_pixels=args.max_pixels)
    names = [str(args.images[i]) for i in kept]
    skipped = [{"image": str(path), "error": why} for _, path, why in failed]
    probs = clf.predict_pil(images)
    if args.object and len(images):
        probs, names = mean_probabilities(probs)[None, :], [f"one object ({len(names)} photos)"]
    answers = []
    for name, row in zip(names, probs):
        classes = ranked(clf.class_names, row)
        answers.append({"image": name, "answer": str(answer(classes, clf.cfg.threshold)),
                        "classes": [{"name": c.name, "probability": round(c.probability, 4)} for c in classes[:args.top_k]]})
    if args.json:
        print(json.dumps({"model": str(args.model or project.model_path), "answers": answers, "skipped": skipped}, indent=2))
    else:
        rows = [[a["image"], a["answer"], *[f"{c['name']} {c['probability']:.3f}" for c in a["classes"]]] for a in answers]
        if rows:
            print(format_table(["image", "answer"] + [f"#{i + 1}" for i in range(len(rows[0]) - 2)], rows))
        for s in skipped:
            print(f"skipped {s['image']}: {s['error']}")
    return 2 if skipped else 0
