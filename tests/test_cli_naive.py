"""`muses export-classification-data` and `label-preview` as a curator reads them."""
import re
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


def test_label_preview_writes_its_html_report_without_photos_and_shows_the_words(project, met_sample, capsys):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    assert main(["-q", "import", str(met_sample / "records.jsonl"), "--preset", "met-scrapi"]) == 0
    capsys.readouterr()
    assert main(["label-preview", "-q", "--left-out", "left-out.csv"]) == 0  # no generate-images: no photos
    out = capsys.readouterr().out
    html = (project.root / "reports" / "label-preview" / "report.html").read_text(encoding="utf-8")
    assert "<mark>" in html and "The words, in context" in html
    # the class table adds up: classes + left out + none of these = all records
    table = out.split("\nclass ")[-1]
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^(\S.*?)\s{2,}(\d+)", table, re.MULTILINE)}
    assert counts["all records"] == 206 == sum(n for name, n in counts.items() if name != "all records")
    assert main(["label-preview", "-q", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "    overridden (medal won by 'medal'): 196696, title: [Bust] of a man" in out
    header = (project.root / "left-out.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "id,status,reason,classes,exclude_words,title,object_type"


def test_values_lists_a_field_with_its_labels_and_shows_what_moved(project, met_sample, capsys):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    assert main(["-q", "import", str(met_sample / "records.jsonl"), "--preset", "met-scrapi"]) == 0
    capsys.readouterr()
    assert main(["values", "medium", "--contains", "bronze", "--csv", "bronze.csv"]) == 0
    out = capsys.readouterr().out
    assert "medal" in out and "'medal' in object_type" in out and "since the last run" not in out
    rows = (project.root / "bronze.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "value,records,label,share,why" and all("bronze" in r.casefold() for r in rows[1:])

    assert main(["values", "medium"]) == 0  # the first whole run: nothing to compare with yet
    assert "since the last run" not in capsys.readouterr().out
    text = project.definitions_path.read_text(encoding="utf-8")
    project.definitions_path.write_text(text.replace('"gem"]', '"gem", "bronze"]'), encoding="utf-8")
    assert main(["values", "medium"]) == 0
    out = capsys.readouterr().out
    moved = re.search(r"since the last run: (.*)", out)[1]
    assert moved.startswith("+") and "conflict" in moved and "−" in moved
    assert out.rstrip().splitlines()[-1].startswith("next: ")


def test_label_preview_compare_scores_against_the_catalog_column(project, met_sample, capsys):
    shutil.copy(EXAMPLES / "definitions.toml", project.definitions_path)
    assert main(["-q", "import", str(met_sample / "records.jsonl"), "--preset", "met-scrapi"]) == 0
    capsys.readouterr()
    assert main(["label-preview", "-q", "--compare", "what"]) == 0
    out = capsys.readouterr().out
    assert "agreement with the catalog's 'what' (206 records with a value)" in out
    assert re.search(r"^photograph\s+42\s+37\s+37\s+0\.881\s+1\.0$", out, re.MULTILINE)
    assert "271747: Prints | Metal | Photographs" in out  # a disagreement, by object number
    assert main(["label-preview", "-q", "--compare", "nowhere"]) == 2
    assert "no record has a value in 'nowhere'" in capsys.readouterr().err
