"""ONNX export of a model file (torch's exporter): ``NAME.onnx`` beside ``NAME.safetensors``,
for :mod:`muses.model.onnx` to run without torch.

    path = write_runtime_files("models/naive.safetensors")   # what train-model calls last
    path = export_onnx("models/naive.safetensors", "/srv/naive.onnx", opset=20)
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from muses import __version__
from muses.model import DEFAULT_OPSET
from muses.predictions import probabilities
from muses.model.onnx_file import DIGEST_KEY, INPUT, OUTPUTS, OnnxError, model_digest, onnx_path_for, session_options
from muses.model.predictor import TorchPredictor


def write_runtime_files(model_path: str | Path) -> Path:
    """The files prediction runs from, written after training: NAME.onnx, so `muses predict`,
    classify and the web app use ONNX Runtime (several times faster than torch on a CPU) with no
    separate export step. Raises :class:`~muses.model.onnx_file.OnnxError` saying why it could not;
    the model file is complete without it (the ONNX file is then exported on first use)."""
    return export_onnx(model_path)


def export_onnx(model_path: str | Path, out: str | Path | None = None, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write the model as ONNX (default: beside it as NAME.onnx); returns the ONNX path.

    Written to a temporary file and renamed, so an interrupted export leaves no half file.
    """
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise OnnxError(f"opset must be an integer >= {DEFAULT_OPSET}, got {opset!r}")
    out = Path(out) if out else onnx_path_for(model_path)
    clf = TorchPredictor.load(model_path, device="cpu")  # first: its errors say how to get a model file
    digest = model_digest(model_path)
    net = _ExportNet(clf.net).eval()
    size = clf.cfg.input_size
    example = torch.zeros(2, 3, size, size)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp")  # two processes exporting at once never share one
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                net, (example,), input_names=[INPUT], output_names=list(OUTPUTS), opset_version=opset,
                dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1)}}, dynamo=True, verbose=False,
            )
        proto = program.model_proto
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; the user needs one message
        raise OnnxError(f"cannot export {model_path} to ONNX (backbone {clf.cfg.backbone}): {exc}") from exc
    meta = {DIGEST_KEY: digest, "muses.version": __version__, "muses.class_names": json.dumps(clf.class_names),
            "muses.input_size": str(size)}
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save_model(proto, str(tmp))  # one file: weights embedded (a Lite0 is ~14 MB)
        os.replace(tmp, out)
    except OSError as exc:  # a read-only or full models folder: the model itself is fine
        with contextlib.suppress(OSError):  # on a read-only folder even this fails; the OnnxError must still come
            tmp.unlink(missing_ok=True)
        raise OnnxError(f"cannot write {out} ({exc.strerror or exc}); free space or fix the folder's "
                        "permissions, then run `muses export-onnx`") from exc
    return out


class _ExportNet(torch.nn.Module):
    """One graph, two outputs: the logits and the pooled features they come from."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.net.backbone(x).flatten(1)
        return self.net.fc(feats), feats  # dropout is the identity in eval mode


class _quiet_exporter:
    """torch's exporter prints progress lines and warnings meant for its developers."""

    def __enter__(self):
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        self._levels = {}
        for name in ("torch.onnx", "torch.export", "onnxscript", "torch._dynamo"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._warnings.__exit__(*exc)
        return False


def check_export(model_path: str | Path, onnx_path: str | Path, n: int = 4, seed: int = 0) -> float:
    """Largest difference between torch's and ONNX Runtime's class probabilities on ``n``
    seeded random inputs: a broken export shows up as a large number."""
    clf = TorchPredictor.load(model_path, device="cpu")
    size = clf.cfg.input_size
    x = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, 3, size, size), dtype=np.float32))
    with torch.inference_mode():
        expected = torch.softmax(clf.net(x), 1).numpy()
    session = ort.InferenceSession(str(onnx_path), session_options(), providers=["CPUExecutionProvider"])
    got = probabilities(session.run([OUTPUTS[0]], {INPUT: x.numpy()})[0])
    return float(np.abs(got - expected).max())


