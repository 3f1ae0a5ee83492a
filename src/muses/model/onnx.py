"""ONNX Runtime prediction: :class:`OnnxPredictor`, the :class:`~muses.model.predictor.Predictor`
that runs ``NAME.onnx`` (written by :mod:`muses.model.onnx_export`).

    clf = load_onnx("models/naive.safetensors")         # exports a stale or missing file first
    probs = clf.predict_pil(images)

``NAME.onnx`` sits beside ``NAME.safetensors`` and records the model file's digest, so an ONNX
file left behind by an earlier training run is never used for a newer model. The graph has
two outputs, ``logits`` and the pooled ``features``, with a dynamic batch axis; the
preprocessing comes from the model's own metadata (``ModelCfg.preprocess``), as in torch.

No torch here (nor the onnx package): a one-photo ``muses predict`` starts in about a second
instead of loading torch for several; exporting is the only ONNX step that needs torch.
"""
from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from muses.model.files import ModelCfg, read_cfg
from muses.model.files import paths as model_paths
from muses.model.image_loading import decode_all, preprocess_many
from muses.model.onnx_file import DIGEST_KEY, INPUT, OUTPUTS, OnnxError, model_digest, onnx_path_for, session_options
from muses.predictions import probabilities

def _session(onnx_path: str | Path, threads: int | None = None) -> "ort.InferenceSession":
    try:
        return ort.InferenceSession(str(onnx_path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise OnnxError(f"ONNX Runtime cannot load {onnx_path}: {exc}; re-export it with `muses export-onnx`") from exc


def _digest_of(session: "ort.InferenceSession") -> str | None:
    return session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY)


def exported_digest(onnx_path: str | Path) -> str | None:
    """The model digest stored in an ONNX file (None when absent or unreadable)."""
    try:
        return _digest_of(_session(onnx_path, threads=1))
    except OnnxError:
        return None


def is_current(model_path: str | Path, onnx_path: str | Path | None = None) -> bool:
    """True when the ONNX file exists and was exported from this exact model file."""
    onnx_path = Path(onnx_path) if onnx_path else onnx_path_for(model_path)
    return onnx_path.is_file() and exported_digest(onnx_path) == model_digest(model_path)


class OnnxPredictor:
    """A :class:`~muses.model.predictor.Predictor` running the exported graph with ONNX Runtime
    (prediction only; training stays with torch)."""

    runtime = "onnx"

    def __init__(self, onnx_path: str | Path, cfg: ModelCfg, *, model_path: str | Path, threads: int | None = None,
                 workers: int | None = None):
        self.onnx_path, self.cfg, self.workers, self.threads = Path(onnx_path), cfg, workers, threads
        self.model_path = model_paths(model_path)[0]
        self.name = self.model_path.stem
        self.session = _session(onnx_path, threads)
        self.digest = _digest_of(self.session)  # the model file it was exported from

    def __reduce__(self):
        # A session cannot be pickled: a copy (a Ray worker's) opens the same file again.
        return _reopen, (self.onnx_path, self.cfg, self.model_path, self.threads, self.workers)

    @property
    def class_names(self) -> list[str]:
        return list(self.cfg.class_names)

    @functools.cached_property
    def features_key(self) -> str:
        return self.digest or model_digest(self.model_path)

    def _run(self, images: Sequence[Image.Image], batch_size: int, outputs: Sequence[str]) -> list[np.ndarray]:
        """The graph's ``outputs`` for ``images``, one array each; one run gives all of them."""
        images = list(images)
        widths = {"logits": len(self.class_names), "features": self.cfg.num_features}
        runs = [
            self.session.run(list(outputs), {INPUT: preprocess_many(images[s : s + batch_size], self.cfg.preprocess,
                                                                    workers=self.workers)})
            for s in range(0, len(images), batch_size)
        ]
        return [np.concatenate([r[k] for r in runs]) if runs else np.zeros((0, widths[name]), dtype=np.float32)
                for k, name in enumerate(outputs)]

    def predict_pil(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Class probabilities, shape (n_images, n_classes), columns in ``class_names`` order."""
        return probabilities(self._run(images, batch_size, ["logits"])[0], self.cfg.temperature)

    def extract_features(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Pooled backbone features, shape (n_images, num_features)."""
        return self._run(images, batch_size, ["features"])[0]

    def predict_with_features(self, images: Sequence[Image.Image],
                              batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and pooled features from one run of the graph (it makes both)."""
        logits, feats = self._run(images, batch_size, OUTPUTS)
        return probabilities(logits, self.cfg.temperature), feats

    def predict_new(self, paths: str | Path | Sequence[str | Path], batch_size: int = 32) -> np.ndarray:
        return self.predict_pil(decode_all(paths, self.cfg.input_size), batch_size)


def _reopen(onnx_path: Path, cfg: ModelCfg, model_path: Path, threads: int | None, workers: int | None) -> OnnxPredictor:
    return OnnxPredictor(onnx_path, cfg, model_path=model_path, threads=threads, workers=workers)


def load_onnx(
    model_path: str | Path,
    onnx_path: str | Path | None = None,
    *,
    reexport: bool = True,
    threads: int | None = None,
    workers: int | None = None,
) -> OnnxPredictor:
    """The ONNX predictor for a model file; a missing, stale or unreadable ONNX file is exported
    again (``reexport=True``: needs torch, 10 to 30 s) or refused with :class:`OnnxError`."""
    cfg = read_cfg(_existing(model_paths(model_path)[1]))
    onnx_path = Path(onnx_path) if onnx_path else onnx_path_for(model_path)
    why = "does not exist"
    if onnx_path.is_file():
        try:
            predictor = OnnxPredictor(onnx_path, cfg, model_path=model_path, threads=threads, workers=workers)
        except OnnxError as exc:
            why = f"cannot be read ({exc})"
        else:
            if predictor.digest == model_digest(model_path):
                return predictor
            why = "is stale (exported from another version of the model)"
    if not reexport:
        raise OnnxError(f"{onnx_path} {why}; run `muses export-onnx --model {model_path}`")
    if onnx_path.exists() and not onnx_path.is_file():  # fail now, not after a 10 to 30 s export
        raise OnnxError(f"{onnx_path} is not a file (a folder?); move it away so the model can be exported there")
    from muses.model.onnx_export import export_onnx  # torch: only when there is something to export

    print(f"{onnx_path} {why}: exporting {model_path} for ONNX Runtime (once per trained model, 10 to 30 s)",
          file=sys.stderr, flush=True)
    export_onnx(model_path, onnx_path)
    return OnnxPredictor(onnx_path, cfg, model_path=model_path, threads=threads, workers=workers)


def _existing(meta: Path) -> Path:
    # Both files are needed to export and to check the digest: say how to get them.
    from muses.model.files import ModelFileError

    for required in (meta.with_suffix(".safetensors"), meta):
        if not required.is_file():
            raise ModelFileError(f"model file {required} not found; train one with `muses train-model` "
                                 "or set [classification.naive_classification] model_path in muses.toml")
    return meta
