"""ONNX export of a model file, and :class:`OnnxPredictor`, the
:class:`~muses.model.predictor.Predictor` that runs it with ONNX Runtime.

    path = export_onnx("models/naive.safetensors")     # models/naive.onnx
    clf = load_onnx("models/naive.safetensors")         # re-exports a stale or missing file
    probs = clf.predict_pil(images)

``NAME.onnx`` sits beside ``NAME.safetensors`` and records the model file's digest, so an ONNX
file left behind by an earlier training run is never used for a newer model. The graph has
two outputs, ``logits`` and the pooled ``features``, with a dynamic batch axis; the
preprocessing comes from the model's own metadata (``ModelCfg.preprocess``), as in torch.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from tqdm import tqdm

from muses import __version__
from muses.errors import MusesError
from muses.model import DEFAULT_OPSET
from muses.model.files import ModelCfg, read_model
from muses.model.files import paths as model_paths
from muses.model.image_loading import preprocess_many
from muses.model.predictor import TorchPredictor, decode_all
from muses.predictions import probabilities

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


def exported_digest(onnx_path: str | Path) -> str | None:
    """The model digest stored in an ONNX file (None when absent or unreadable)."""
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not a current export
        return None
    return next((p.value for p in proto.metadata_props if p.key == DIGEST_KEY), None)


def is_current(model_path: str | Path, onnx_path: str | Path | None = None) -> bool:
    """True when the ONNX file exists and was exported from this exact model file."""
    onnx_path = Path(onnx_path) if onnx_path else onnx_path_for(model_path)
    return onnx_path.is_file() and exported_digest(onnx_path) == model_digest(model_path)


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
    tmp = out.with_name(out.name + ".tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
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
    onnx.save_model(proto, str(tmp))  # one file: weights embedded (a Lite0 is ~14 MB)
    os.replace(tmp, out)
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


def session_options(threads: int | None = None):
    """ONNX Runtime options: every core for one inference, all graph optimizations."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return options


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


class OnnxPredictor:
    """A :class:`~muses.model.predictor.Predictor` running the exported graph with ONNX Runtime
    (prediction only; training stays with torch)."""

    runtime = "onnx"

    def __init__(self, onnx_path: str | Path, cfg: ModelCfg, *, model_path: str | Path, threads: int | None = None,
                 workers: int | None = None):
        self.onnx_path, self.cfg, self.workers = Path(onnx_path), cfg, workers
        self.model_path = model_paths(model_path)[0]
        self.name = self.model_path.stem
        try:
            self.session = ort.InferenceSession(str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise OnnxError(f"ONNX Runtime cannot load {onnx_path}: {exc}; re-export it with `muses export-onnx`") from exc

    @property
    def class_names(self) -> list[str]:
        return list(self.cfg.class_names)

    @functools.cached_property
    def features_key(self) -> str:
        return exported_digest(self.onnx_path) or model_digest(self.model_path)

    def _run(self, images: Sequence[Image.Image], batch_size: int, output: str, width: int) -> np.ndarray:
        images = list(images)
        out = [
            self.session.run([output], {INPUT: preprocess_many(images[s : s + batch_size], self.cfg.preprocess,
                                                               workers=self.workers)})[0]
            for s in range(0, len(images), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, width), dtype=np.float32)

    def predict_pil(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in ``class_names`` order."""
        return probabilities(self._run(images, batch_size, "logits", len(self.class_names)), self.cfg.temperature)

    def extract_features(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Pooled backbone features, shape (n_images, num_features)."""
        return self._run(images, batch_size, "features", self.cfg.num_features)

    def predict_new(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        return self.predict_pil(decode_all(paths, self.cfg.input_size), batch_size)


def load_onnx(
    model_path: str | Path,
    onnx_path: str | Path | None = None,
    *,
    reexport: bool = True,
    threads: int | None = None,
    workers: int | None = None,
) -> OnnxPredictor:
    """The ONNX predictor for a model file; a missing or stale ONNX file is exported again
    (``reexport=True``) or refused with :class:`OnnxError`."""
    _, cfg = read_model(model_path)
    onnx_path = Path(onnx_path) if onnx_path else onnx_path_for(model_path)
    if not is_current(model_path, onnx_path):
        if not reexport:
            state = "is stale (exported from another version of the model)" if onnx_path.is_file() else "does not exist"
            raise OnnxError(f"{onnx_path} {state}; run `muses export-onnx --model {model_path}`")
        tqdm.write(f"exporting {model_path} to {onnx_path} (once per trained model)", file=sys.stderr)
        export_onnx(model_path, onnx_path)
    return OnnxPredictor(onnx_path, cfg, model_path=model_path, threads=threads, workers=workers)
