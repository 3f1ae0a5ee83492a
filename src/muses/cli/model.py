"""`muses train-model` and `muses predict`."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from muses.actions import PredictConfig, TrainConfig, predict_photos, train
from muses.actions.predicting import answer_json
from muses.cli import UsageError, command_parser, config_from, default_of, format_table, positive
from muses.cli.engines import add_compute_args, compute_from_args
from muses.model import RUNTIMES
from muses.model.config import TrainCfg  # no torch: cheap enough for --help
from muses.model.preprocessing import RESIZE_MODES, PreprocessCfg
from muses.settings import ImageSettings, find_project

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
    t, c = TrainCfg, TrainConfig  # the defaults shown are read from the configs, never written here
    p = command_parser(subparsers, "train-model", help="train the classifier on a dataset folder", examples=TRAIN_EXAMPLES)
    p.add_argument("--model-name", help="file name in the models folder (default: the stem of muses.toml's model_path)")
    p.add_argument("--epochs", type=positive(int), help=f"total epochs (default {default_of(t, 'epochs')})")
    p.add_argument("--plot-performance", action="store_true", default=None, help="write plots/NAME_performance.png")
    p.add_argument("--fine-tuning", action=argparse.BooleanOptionalAction,
                   help=f"fine-tune the backbone tail after transfer learning (default: {_yes(t, 'fine_tuning')}; "
                        "--unfrozen-blocks or --fine-tune-lr ask for it)")
    p.add_argument("--unfrozen-blocks", "--fine-tune-layers", dest="unfrozen_blocks", type=positive(int),
                   help=f"backbone blocks to fine-tune, counted from the last (default {default_of(t, 'unfrozen_blocks')}); "
                        "--fine-tune-layers is its old name")
    p.add_argument("--fine-tune-lr", type=positive(float),
                   help=f"learning rate when fine-tuning (default {default_of(t, 'fine_tune_lr'):g})")
    p.add_argument("--lr", type=positive(float), help=f"learning rate of transfer learning (default {default_of(t, 'lr'):g})")
    p.add_argument("--decay", type=float,
                   help=f"learning-rate decay per step, lr/(1+decay*step) (default {default_of(t, 'decay'):g})")
    p.add_argument("--dropout", type=float, help=f"dropout before the linear head (default {default_of(t, 'dropout'):g})")
    p.add_argument("--backbone", help="any timm model name (default: muses.toml [training] backbone)")
    p.add_argument("--weights", type=Path, metavar="FILE", help="pretrained weights (.safetensors or .pth) for --backbone")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="train from random weights, on purpose")
    p.add_argument("--image-size", type=positive(int), help="input size in pixels (default: muses.toml [training] image_size)")
    p.add_argument("--resize-mode", choices=RESIZE_MODES,
                   help=f"how photos become squares (default {default_of(PreprocessCfg, 'resize_mode')}; pad keeps the "
                        "whole object)")
    p.add_argument("--dataset", type=Path, metavar="DIR", help="dataset folder (default: datasets/naive)")
    p.add_argument("--batch-size", type=positive(int), help=f"default {default_of(t, 'batch_size')}")
    p.add_argument("--views", type=positive(int),
                   help=f"augmented views cached per training image (default {default_of(t, 'views')})")
    p.add_argument("--early-stopping", type=positive(int), metavar="N",
                   help="stop a phase after N epochs without validation improvement, keeping its best epoch")
    p.add_argument("--label-smoothing", type=float, metavar="S",
                   help="share of each label spread over the other classes, so that the model does not learn "
                        f"to be 100 %% sure (default {default_of(t, 'label_smoothing'):g}, measured by `make "
                        "bench-quality`; 0 for none)")
    p.add_argument("--resume", action="store_true", default=None, help="continue an interrupted run from its checkpoint")
    p.add_argument("--device", help=f"auto (CUDA when present), cpu or cuda (default {default_of(c, 'device')})")
    p.add_argument("--workers", type=int, help="image decoding processes (default: up to 4)")
    p.add_argument("--seed", type=int, help=f"random seed (default {default_of(t, 'seed')})")
    p.add_argument("--nproc", type=positive(int), default=1, metavar="N",
                   help="train in N processes (DistributedDataParallel; one per GPU, or gloo on CPU) (default 1)")
    add_compute_args(p)
    p.set_defaults(func=run_train)

    p = command_parser(subparsers, "predict", help="classify new photos with a trained model", examples=PREDICT_EXAMPLES)
    p.add_argument("images", nargs="+", type=Path, metavar="IMG")
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--top-k", type=positive(int), help=f"classes shown per answer (default {default_of(PredictConfig, 'top_k')})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--object", dest="one_object", action="store_true", default=None,
                   help="the photos show one object: average them into one answer")
    p.add_argument("--max-pixels", type=positive(int), metavar="N",
                   help=f"photos with more pixels are skipped, unread (default: muses.toml [images] max_pixels, "
                        f"{default_of(ImageSettings, 'max_pixels'):,})")
    p.add_argument("--runtime", choices=RUNTIMES,
                   help=f"{default_of(PredictConfig, 'runtime')} (default): ONNX Runtime, fast, exporting NAME.onnx "
                        "once if missing; torch: the slow reference")
    p.set_defaults(func=run_predict)


def _yes(config: type, name: str) -> str:
    return "yes" if default_of(config, name) else "no"


def train_config(args) -> TrainConfig:
    """The train action's config of the flags given: TrainConfig's defaults, each flag given replacing its field."""
    config = config_from(TrainConfig(), args)
    # a fine-tuning flag asks for fine-tuning, now that the default is the head alone
    asks = args.fine_tuning is None and (args.unfrozen_blocks is not None or args.fine_tune_lr is not None)
    training = dataclasses.replace(config.training, compute=compute_from_args(args),
                                   **({"fine_tuning": True} if asks else {}))
    return dataclasses.replace(config, training=training)


def run_train(args) -> int:
    from muses.model import distributed

    project, config = find_project(args.project), train_config(args)
    compute = config.training.compute or project.settings.compute
    if compute.uses_ray and (args.nproc > 1 or distributed.from_env().active):
        raise UsageError("--engine ray extracts the features on a Ray cluster; --nproc trains in several "
                         "processes here: use one of them (or --engine local with --nproc)")
    if args.nproc > 1 and not distributed.from_env().active:
        return distributed.launch(args.nproc, _without_nproc(sys.argv[1:]))
    try:
        result = train(project, config)
    except KeyboardInterrupt:
        print("training interrupted; the last finished epoch is checkpointed: run the same command "
              "with --resume to continue", file=sys.stderr)
        raise
    if result.written:
        _print_trained(project, result)
    return 0


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


def _print_trained(project, result) -> None:
    for image, why in result.skipped:
        print(f"skipped {image}: {why}")
    print(format_table(["phase", "epochs", "train acc", "val acc", "val macro-F1", "seconds"],
                       _phase_rows(result.phases, result.history)))
    out = result.model_path
    print(f"model: {out} (+ .json), {len(result.class_names)} classes, {result.n_images} images, "
          f"{result.seconds:.0f} s in all")
    print(_validation_caveat(result.n_val))
    print(_calibration_words(result))
    if result.onnx_path is not None:
        print(f"fast runtime: {result.onnx_path} (predict, classify and serve use it)")
    elif result.onnx_error:
        print(f"note: {result.onnx_error}; until then predictions use torch (slower)")
    if result.plot_path is not None:
        print(f"plot: {result.plot_path}")
    if out.resolve() != project.model_path.resolve():
        rel = out.relative_to(project.root) if out.is_relative_to(project.root) else out
        print(f'to make it the default model, set in muses.toml:\n  [classification.naive_classification]\n  model_path = "{rel}"')
    print("next: muses evaluate   (how good the model is on photos it has not seen)")


def _validation_caveat(n_val: int) -> str:
    """How far the "val acc" column can be trusted: it rests on the validation photos alone."""
    text = f"val acc rests on {n_val} photos (the validation split)"
    if n_val < 50:
        text += ("; with so few, one photo moves it by more than 2 points: a rough guide only, "
                 "`muses evaluate` measures the test split")
    return text


def _calibration_words(result) -> str:
    if not result.calibrated:
        return "calibration: none (the dataset has no validation photos); answers are never marked uncertain"
    source = ("out-of-fold predictions of every training photo" if result.out_of_fold else "the validation photos")
    return (f"calibration on {source}: temperature {result.temperature:.2f}; answers below "
            f"{result.threshold:.0%} are shown as uncertain. Check them with `muses evaluate`.")


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


def run_predict(args) -> int:
    project = find_project(args.project)
    result = predict_photos(project, config_from(PredictConfig(), args))
    answers = [{"image": a.image, "answer": a.answer, "answer_kind": a.kind, "classes": answer_json(a.classes)}
               for a in result.answers]
    skipped = [{"image": image, "error": why} for image, why in result.skipped]
    if args.json:
        print(json.dumps({"model": str(result.model), "answers": answers, "skipped": skipped}, indent=2))
    else:
        rows = [[a["image"], a["answer"], *[f"{c['shown']} {c['probability']:.3f}" for c in a["classes"]]] for a in answers]
        if rows:
            print(format_table(["image", "answer"] + [f"#{i + 1}" for i in range(len(rows[0]) - 2)], rows))
        for s in skipped:
            print(f"skipped {s['image']}: {s['error']}")
    return 2 if skipped else 0
