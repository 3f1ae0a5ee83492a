"""`make bench` (benchmarks/run.py): the harness runs every section on tiny settings, so that
it cannot silently rot, and a section whose dependency is missing reports why."""
from __future__ import annotations

import pytest

from benchmarks import run as bench

TINY = bench.Settings(epochs=3, image_size=64, views=1, max_images=10, classify_images=4, batch1_images=2,
                      vgg_batch=2, vgg_batches=1, labeling_records=2_000, labeling_repeat=1, import_records=100,
                      large_jpegs=1, large_side=3000, predict_images=2)


@pytest.mark.slow
def test_every_section_runs_on_tiny_settings(tmp_path, monkeypatch, met_sample):
    # The harness runs on any Met-shaped collection: here the bundled demo, so a fresh clone
    # without the shared Met sample still checks every section.
    monkeypatch.setattr(bench, "MET_SAMPLE", met_sample)
    rows = bench.run(TINY, workdir=tmp_path, log=print)
    text = bench.format_rows(rows)
    print(text)
    assert "not available" not in text
    values = {r.what.strip(): r.value for r in rows}
    assert values["  macro-F1 on the test split (original)".strip()] == "n/a (not run to the end)"
    for what in ("classify end to end, ONNX, batch 32", "classify end to end, torch, batch 1",
                 "model only, ONNX, batch 1", "loading only (decode + preprocess), 1 thread"):
        assert values[what].endswith("images/s") and float(values[what].split()[0].replace(",", "")) > 0
    assert any(w.startswith("time to a trained model: muses (Lite0, 64 px, 3+0 epochs)") for w in values)
    assert any(w.startswith("generate-images (1 JPEGs of 3000x2250 px)") for w in values)
    peaks = [r for r in rows if r.what.startswith("peak RSS")]
    assert len(peaks) == 3 and all(r.value.endswith(" MB") for r in peaks)
    assert next(r for r in peaks if "train-model" in r.what).met is True  # tiny training stays far below 3 GB
    # targets are judged only at the documented settings
    assert next(r for r in rows if r.what.startswith("time to a trained model: muses")).met is None


def test_missing_dependency_is_reported_per_section(tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "MET_SAMPLE", tmp_path / "nowhere")
    rows = bench.run(TINY, only=["train", "original", "labeling"], workdir=tmp_path, log=lambda msg: None)
    by_name = {r.what: r.value for r in rows}
    assert by_name["train"].startswith("not available: no Met sample at")
    assert by_name["original"] == by_name["train"]  # the project is built once, its failure remembered
    assert any(r.what.startswith("naive labeling (2,000") for r in rows)  # the other sections still run


def test_table_is_aligned_with_notes_and_machine(capsys):
    rows = [bench.Row("a", "1.0 images/s", ">= 50 images/s", False, "how"), bench.Row("  b", "2 s", note="how"),
            bench.Row("c", "3 MB", "<= 3 GB", True)]
    lines = bench.format_rows(rows).splitlines()
    assert lines[0].split() == ["what", "value", "target", "met?"]
    assert "a [1]" in lines[2] and "NOT met" in lines[2] and "b [1]" in lines[3] and lines[4].endswith("met")
    assert len({len(line) for line in lines[2:4]}) <= 2 and lines[-1] == "[1] how"
    machine = "\n".join(bench.machine())
    assert "cores" in machine and "torch" in machine and "onnxruntime" in machine
    with pytest.raises(ValueError, match="unknown section"):
        bench.run(TINY, only=["nope"])
