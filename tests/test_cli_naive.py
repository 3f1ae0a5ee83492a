"""`muses export-classification-data` and `label-preview` as a curator reads them."""
import shutil
from pathlib import Path

from muses.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_export_names_its_report_and_the_next_step_and_keeps_rule_detail_for_verbose(project, met_sample, capsys):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    assert main(["-q", "import", str(met_sample / "records.jsonl"), "--preset", "met-scrapi"]) == 0
    assert main(["-q", "generate-images", "--workers", "1"]) == 0
    capsys.readouterr()

    assert main(["export-classification-data"]) == 0
    out, err = capsys.readouterr()
    dataset = project.root / "datasets" / "naive"
    assert f"labeling report: {dataset / 'report.html'}" in out and (dataset / "report.html").is_file()
    assert out.rstrip().endswith("next: muses train-model   (teaches the image classifier these labels)")
    assert "keyword" in out and "overridden" not in out and "vetoed" not in out
    assert "labeling: 206/206 objects, 100 %, done in" in err and "\r" not in err  # stderr is a log here

    assert main(["export-classification-data", "--verbose", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "overridden" in out and "vetoed" in out and err == ""

    assert main(["label-preview", "-q"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("next: muses export-classification-data   "
                                                      "(writes the training data with these labels)")
