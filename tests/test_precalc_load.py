"""`precalc --load` checks every file as a shard's output is checked, and stores all of them or nothing; bad
input to `precalc` gets a one-line error (issue 25: exact values)."""
from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from stack_builder.errors import StackError
from stack_builder.precalc import loading
from stack_builder.precalc.store import Store
from stack_builder.spec.stack_spec import ModelSpec
from stacks import Stack

MODEL = ModelSpec(columns=(("y", "float"), ("n", "integer")), examples=Path("."))
A, B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def parquet(path: Path, select: str) -> Path:
    """A Parquet file of the rows ``select`` gives (DuckDB SQL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"COPY ({select}) TO '{path}' (FORMAT PARQUET)")
    return path


def rows(image: str = "m", digest: str = A, keys: tuple[str, ...] = ("k1", "k2"), y: str = "1.5",
         n: str = "9007199254740993") -> str:
    return " UNION ALL ".join(f"SELECT '{image}' AS image, '{digest}' AS digest, '{key}' AS key, {y} AS y, "
                              f"{n} AS n" for key in keys)


def stored(store: Store) -> list[tuple[object, ...]]:
    return store.db.execute("SELECT image, digest, key, y, n FROM predictions ORDER BY key").fetchall()


def load(tmp_path: Path, *files: Path) -> tuple[Store, int | str]:
    store = Store(tmp_path / "store.duckdb")
    store.ensure(MODEL.columns)
    try:
        return store, loading.load(store, list(files), "m", MODEL)
    except StackError as exc:
        return store, str(exc)


def test_good_files_are_loaded_exactly(tmp_path: Path) -> None:
    one = parquet(tmp_path / "s0" / "p.parquet", rows(keys=("k1", "k2"), y="NULL::DOUBLE"))
    two = parquet(tmp_path / "s1" / "p.parquet", rows(keys=("k3",)))
    store, added = load(tmp_path, one, two)
    assert added == 3  # y is null in every row of one file, not of the files loaded: accepted
    assert stored(store) == [("m", A, "k1", None, 9007199254740993), ("m", A, "k2", None, 9007199254740993),
                             ("m", A, "k3", 1.5, 9007199254740993)]


@pytest.mark.parametrize("second, says", [
    (rows(image="other", keys=("k3",)), "row 1: image 'other', not m"),
    (rows(digest=B, keys=("k3",)), f"row 1: digest {B}, not {A} (the one being loaded)"),
    (rows(digest="evil", keys=("k3",)), "row 1: digest 'evil' is not a sha256 digest"),
    (rows(keys=("k1",)), "row 1: key 'k1' is also in"),
    (rows(keys=("k3",), n="'1_000'"), "column n (integer), key k3: '1_000' is not a number"),
    (rows(keys=("k3",), n="'9223372036854775808'"), "key k3: 9223372036854775808 does not fit in a signed 64-bit"),
    (rows(keys=("k3",), y="'nan'::DOUBLE"), "column y (float), key k3: 'nan' is not a number"),
    (rows(keys=("k3",), y="'x'::BLOB"), "column y, key k3: a value of type bytes"),
    ("SELECT 'm' AS image, '" + A + "' AS digest, 'k3' AS key, 1.5 AS y", "no column n: a file of `precalc "
     "--export` for m has exactly image, digest, key, y, n"),
    (rows(keys=("k3",)).replace(" AS n", " AS n, 1 AS extra"), "column(s) extra that m does not declare"),
])
def test_a_bad_file_is_refused_naming_it_and_nothing_is_loaded(tmp_path: Path, second: str, says: str) -> None:
    one = parquet(tmp_path / "s0" / "p.parquet", rows())
    two = parquet(tmp_path / "s1" / "p.parquet", second)
    store, said = load(tmp_path, one, two)
    assert isinstance(said, str) and says in said and str(two) in said and said.endswith("nothing was loaded"), said
    assert stored(store) == []


def test_a_column_null_in_every_file_is_refused(tmp_path: Path) -> None:
    one = parquet(tmp_path / "s0" / "p.parquet", rows(keys=("k1",), y="NULL::DOUBLE"))
    two = parquet(tmp_path / "s1" / "p.parquet", rows(keys=("k2",), y="NULL::DOUBLE"))
    store, said = load(tmp_path, one, two)
    assert said == ("--load: column y is null in every row of the files loaded: the model predicts nothing there; "
                    "nothing was loaded")
    assert stored(store) == []


# -- one-line errors through the command ----------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    stack = Stack(tmp_path / "stack", None)
    stack.write("spec.yml", """\
        images:
          scorer:
            image_name: ghcr.io/precalc/scorer
            model:
              columns: {y: float, n: integer}
          cased:
            image_name: ghcr.io/precalc/cased
            model:
              columns: {score: float, Score: float}
        tag:
          prefix: "2024.1"
        """)
    for name, header in (("scorer", "y,n\n1,2\n"), ("cased", "score,Score\n1,2\n")):
        stack.write(f"images/{name}/Dockerfile", "FROM scratch\n")
        stack.write(f"images/{name}/examples/input.csv", "x\n1\n")
        stack.write(f"images/{name}/examples/output.csv", header)
    stack.commit("models")
    return stack


@pytest.mark.parametrize("case", ["columns differing in case", "load without a column", "export onto a file"])
def test_bad_precalc_input_gets_a_one_line_error(stack: Stack, tmp_path: Path, case: str) -> None:
    parquet(tmp_path / "shards" / "s0" / "p.parquet", "SELECT 'scorer' AS image, '" + A + "' AS digest, 'k' AS key, "
            "1.5 AS y")
    (tmp_path / "lib.csv").write_text("id,x\nk1,1\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions-scorer.parquet").write_bytes(b"kept")
    args, says = {
        "columns differing in case": (["--image", "cased", "--load", str(tmp_path / "shards")],
                                      "model columns score, Score (spec.yml, the image's model: block) differ only "
                                      "in case"),
        "load without a column": (["--image", "scorer", "--load", str(tmp_path / "shards")],
                                  f"--load {tmp_path / 'shards' / 's0' / 'p.parquet'}: no column n"),
        "export onto a file": (["--image", "scorer", "--library", str(tmp_path / "lib.csv"), "--export",
                                str(tmp_path / "out")],
                               "predictions-scorer.parquet is already there and precalc never overwrites an export; "
                               "remove that file to replace it, or give another folder"),
    }[case]
    result = stack.doit("precalc", *args)
    assert result.returncode != 0, result.stdout
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    store = stack.root / "artifacts" / "precalc.duckdb"
    assert not store.exists() or duckdb.connect(str(store)).sql("SELECT count(*) FROM predictions").fetchall() == [(0,)]
    assert (tmp_path / "out" / "predictions-scorer.parquet").read_bytes() == b"kept"
