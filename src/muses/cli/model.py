"""`muses train-model` and `muses predict`."""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from pathlib import Path

from muses.cli import UsageError, command_parser, format_table, positive
from muses.settings import find_project

TRANSFER_SHARE = 0.6  # of --epochs, when fine-tuning follows

TRAIN_EXAMPLES = """\
  muses train-model --model-name naive --epochs 50 --plot-performance
  muses train-model --epochs 20 --no-fine-tuning                 # head only: fastest
  muses train-model --epochs 50 --fine-tune-layers 2 --fine-tune-lr 1e-4
  muses train-model --backbone vgg19 --weights weights/vgg19.safetensors --image-size 224
  muses train-model --epochs 50 --resume                          # after Ctrl-C or a crash

The epochs are split 60/40 between transfer learning (only the new head trains, on cached
backbone features: seconds) and fine-tuning (the last --fine-tune-layers units of the
backbone train too); --no-fine-tuning spends them all on transfer learning. EfficientNet
units: the 7 stages of model.blocks, then conv_head+bn2 (the last); BatchNorm stays frozen.
Writes models/NAME.safetensors + models/NAME.json (and plots/NAME_performance.png).
"""

PREDICT_EXAMPLES = """\
  muses predict photo.jpg
  muses predict front.jpg back.jpg --object          # two photos of one object: one answer
  muses predict *.jpg --top-k 3 --json --model models/naive.safetensors
"""


def register(subparsers) -> None:
    p = command_parser(subparsers, "train-model", help="train the classifier on a dataset folder", examples=TRAIN_EXAMPLES)
    p.add_argument("--model-name", help="file name in the models folder (default: the stem of muses.toml's model_path)")
    p.add_argument("--epochs", type=positive(int), default=50, help="total epochs (default 50)")
    p.add_argument("--plot-performance", action="store_true", help="write plots/NAME_performance.png")
    p.add_argument("--fine-tuning", action=argparse.BooleanOptionalAction, default=True,
                   help="fine-tune the backbone tail after transfer learning (default: yes)")
    p.add_argument("--fine-tune-layers", type=positive(int), default=4, help="backbone units to fine-tune (default 4)")
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
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--workers", type=int, help="image decoding processes (default: up to 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run_train)

    p = command_parser(subparsers, "predict", help="classify new photos with a trained model", examples=PREDICT_EXAMPLES)
    p.add_argument("images", nargs="+", type=Path, metavar="IMG")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--top-k", type=positive(int), default=5, help="classes shown per answer (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--object", action="store_true", help="the photos show one object: average them into one answer")
    p.set_defaults(func=run_predict)


def split_epochs(epochs: int, fine_tuning: bool) -> tuple[int, int]:
    if not fine_tuning:
        return epochs, 0
    transfer = max(1, math.ceil(epochs * TRANSFER_SHARE))
    return transfer, epochs - transfer


def run_train(args) -> int:
    from muses.model.classifier import Phase
    from muses.model.loading import setup_classifier

    project = find_project(args.project)
    name = args.model_name or project.model_path.stem
    if not name or Path(name).name != name:
        raise UsageError(f"--model-name must be a plain file name, got {name!r}")
    n_transfer, n_fine = split_epochs(args.epochs, args.fine_tuning)
    t0 = time.perf_counter()
    try:
        clf = setup_classifier(
            args.image_size or int(project.config["training"]["image_size"]),
            mode="train",
            dataset=args.dataset,
            backbone=args.backbone or project.config["training"]["backbone"],
            weights=args.weights,
            pretrained=not args.no_pretrained,
            resize_mode=args.resize_mode,
            dropout=args.dropout,
            seed=args.seed,
            project=project,
            device=args.device,
            batch_size=args.batch_size,
            views=args.views,
            workers=args.workers,
            early_stopping=args.early_stopping,
            restore_best=args.early_stopping is not None,
        )
        if args.fine_tuning and args.fine_tune_layers > clf.num_units:
            raise UsageError(f"--fine-tune-layers: {clf.cfg.backbone} has {clf.num_units} units, got {args.fine_tune_layers}")
        for image, why in clf.dataset.skipped:
            print(f"skipped {image}: {why}")
        phases = [Phase(n_transfer, 0, args.lr, args.decay)]
        if n_fine:
            phases.append(Phase(n_fine, args.fine_tune_layers, args.fine_tune_lr, args.decay))
        history = clf.fit(phases, model_name=name, resume=args.resume)
    except KeyboardInterrupt:
        print("training interrupted; the last finished epoch is checkpointed: run the same command "
              "with --resume to continue", file=sys.stderr)
        raise
    except ValueError as exc:  # bad dataset, weights, settings or checkpoint: the message says what to do
        raise UsageError(str(exc)) from exc
    seconds = time.perf_counter() - t0
    rows = []
    for index, phase in enumerate(phases):
        done = [h for h in history if h["phase"] == index]
        if done:
            last = done[-1]
            rows.append([
                "transfer" if phase.unfrozen == 0 else f"fine-tune ({phase.unfrozen} units)", len(done),
                f"{last['train_accuracy']:.3f}", f"{last.get('val_accuracy', float('nan')):.3f}",
                f"{last.get('val_f1', float('nan')):.3f}", f"{sum(h['seconds'] for h in done):.1f}",
            ])
    print(format_table(["phase", "epochs", "train acc", "val acc", "val macro-F1", "seconds"], rows))
    out = clf.output_dir() / f"{name}.safetensors"
    print(f"model: {out} (+ .json), {len(clf.class_names)} classes, {len(clf.dataset.samples)} images, {seconds:.0f} s in all")
    if args.plot_performance:
        print(f"plot: {clf.plot_performance(project.plots_dir / f'{name}_performance.png')}")
    if out.resolve() != project.model_path.resolve():
        rel = out.relative_to(project.root) if out.is_relative_to(project.root) else out
        print(f'to make it the default model, set in muses.toml:\n  [classification.naive_classification]\n  model_path = "{rel}"')
    return 0


def run_predict(args) -> int:
    from PIL import UnidentifiedImageError

    from muses.model.loading import DefinitionsMismatchWarning, load_model
    from muses.model.preprocessing import open_image

    project = find_project(args.project)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DefinitionsMismatchWarning)
            clf = load_model(args.model, project=project)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    images, names, skipped = [], [], []
    for path in args.images:
        try:
            images.append(open_image(path, clf.cfg.input_size))
            names.append(str(path))
        except (OSError, UnidentifiedImageError) as exc:
            skipped.append({"image": str(path), "error": str(exc)})
    probs = clf.predict_pil(images)
    if args.object and len(images):
        probs, names = probs.mean(axis=0, keepdims=True), [f"one object ({len(names)} photos)"]
    answers = []
    for name, row in zip(names, probs):
        order = row.argsort()[::-1][: args.top_k]
        answers.append({"image": name, "classes": [{"name": clf.class_names[i], "probability": round(float(row[i]), 4)} for i in order]})
    if args.json:
        print(json.dumps({"model": str(args.model or project.model_path), "answers": answers, "skipped": skipped}, indent=2))
    else:
        rows = [[a["image"], *[f"{c['name']} {c['probability']:.3f}" for c in a["classes"]]] for a in answers]
        if rows:
            print(format_table(["image"] + [f"#{i + 1}" for i in range(len(rows[0]) - 1)], rows))
        for s in skipped:
            print(f"skipped {s['image']}: {s['error']}")
    return 2 if skipped else 0
