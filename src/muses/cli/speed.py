"""`muses export-onnx`: the model as ONNX, for fast CPU inference with ONNX Runtime."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from muses.cli import command_parser, format_table, positive
from muses.settings import find_project

EXPORT_EXAMPLES = """\
  muses export-onnx                                   # models/naive.onnx beside models/naive.safetensors
  muses export-onnx --model models/vases.safetensors
  muses export-onnx --out /srv/muses/naive.onnx --opset 20

`muses train-model` writes NAME.onnx itself, and `muses classify`, `muses predict`, `muses similar`
and `muses serve` predict with it (the default --runtime auto), exporting it first when it is
missing or left from an earlier training run (detected by the model digest it records). Run
this command to write the file elsewhere, with another opset, or to check it against torch.
"""


def register(subparsers) -> None:
    from muses.model import DEFAULT_OPSET

    p = command_parser(subparsers, "export-onnx", help="export the trained model to ONNX for fast inference",
                       examples=EXPORT_EXAMPLES)
    p.add_argument("--model", type=Path, metavar="PATH", help="model file (default: muses.toml's model_path)")
    p.add_argument("--out", type=Path, metavar="PATH", help="ONNX file to write, relative to the project folder (default: NAME.onnx beside the model)")
    p.add_argument("--opset", type=positive(), default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--check", action=argparse.BooleanOptionalAction, default=True,
                   help="compare ONNX Runtime's and torch's predictions on a test input (default: yes)")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    from muses.model import onnx_export

    project = find_project(args.project)
    model = args.model or project.model_path
    print(f"exporting {model} to ONNX (10 to 30 seconds)...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    out = onnx_export.export_onnx(model, project.path(args.out) if args.out else None, opset=args.opset)
    seconds = time.perf_counter() - t0
    rows = [["model", str(model)], ["onnx file", str(out)], ["size", f"{out.stat().st_size / 1e6:.1f} MB"],
            ["opset", args.opset], ["export seconds", f"{seconds:.1f}"]]
    if args.check:
        diff = onnx_export.check_export(model, out)
        rows.append(["max |p_onnx - p_torch|", f"{diff:.2e}"])
    print(format_table(["export", "value"], rows))
    return 0
