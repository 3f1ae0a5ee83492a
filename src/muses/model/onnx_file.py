"""What an exported ONNX file is, shared by the exporter (:mod:`muses.model.onnx_export`, torch)
and the predictor (:mod:`muses.model.onnx`, no torch): its name beside the model file, its input
and outputs, the model digest it records, and the session options both open it with.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import onnxruntime as ort

from muses.errors import MusesError
from muses.model.files import paths as model_paths

DIGEST_KEY = "muses.model_digest"
INPUT, OUTPUTS = "image", ("logits", "features")


class OnnxError(MusesError):
    """An ONNX file is missing, stale, or cannot be written or run."""


def model_digest(model_path: str | Path) -> str:
    """sha256 over the model's weights and metadata files: what an ONNX file was exported from."""
    h = hashlib.sha256()
    for path in model_paths(model_path):
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def onnx_path_for(model_path: str | Path) -> Path:
    """``models/NAME.onnx`` for ``models/NAME.safetensors``."""
    weights, _ = model_paths(model_path)
    return weights.with_suffix(".onnx")


def session_options(threads: int | None = None):
    """ONNX Runtime options: all graph optimizations, and every core for one inference, or as
    many as ``OMP_NUM_THREADS`` allows: Ray sets it to the CPUs it gave a worker, so that several
    workers on one machine do not each take every core."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or _allowed_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return options


def _allowed_threads() -> int:
    allowed = os.environ.get("OMP_NUM_THREADS", "")
    return int(allowed) if allowed.isdigit() and int(allowed) > 0 else os.cpu_count() or 1
