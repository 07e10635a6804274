"""The model turns an input CSV into an output CSV, one row per input row, in order."""
import csv
import io
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_predicts_examples(container, tmp_path):
    work = tmp_path / "io"
    work.mkdir()
    (work / "input.csv").write_text((EXAMPLES / "input.csv").read_text())
    work.chmod(0o777)
    code, output = container.run(["/io/input.csv", "/io/output.csv"], volumes={str(work): {"bind": "/io", "mode": "rw"}})
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO((work / "output.csv").read_text())))
    assert [r["species"] for r in rows] == ["setosa", "versicolor", "virginica", "setosa", "virginica"]
    assert all(0.5 < float(r["probability"]) <= 1.0 for r in rows)


def test_rejects_input_without_features(container, tmp_path):
    work = tmp_path / "io"
    work.mkdir()
    (work / "input.csv").write_text("a,b\n1,2\n")
    work.chmod(0o777)
    code, output = container.run(["/io/input.csv", "/io/output.csv"], volumes={str(work): {"bind": "/io", "mode": "rw"}})
    assert code == 2
    assert "missing columns" in output
