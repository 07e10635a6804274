"""Precalculation's pure parts: the library's checks, sampling and shards; a shard's validation; the store."""
from __future__ import annotations

from pathlib import Path

import pytest

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError
from stack_builder.precalc import library as libraries
from stack_builder.precalc import validate, values
from stack_builder.precalc.store import Store, export_target
from stack_builder.spec.stack_spec import ModelSpec


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_library_is_checked_and_cut_into_equal_contiguous_shards(tmp_path: Path) -> None:
    lib = libraries.load(write(tmp_path / "l.csv", "id,x,y\n" + "".join(f"k{n},{n},0\n" for n in range(10))), "", ["x"])
    assert lib.key == "id" and lib.keys([0, 9]) == ["k0", "k9"]
    assert lib.model_input([1, 2], ["x"]) == Table(["x"], [["1"], ["2"]])
    assert libraries.shards(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert libraries.shards(list(range(2)), 5) == [[0], [1]]  # never an empty shard
    first, again = libraries.sample(lib, 4), libraries.sample(lib, 4)
    assert first == again and len(first) == 4 and first == sorted(first)
    assert libraries.sample(lib, 0) == list(range(10)) and libraries.sample(lib, 99) == list(range(10))


@pytest.mark.parametrize("text, key, says", [
    ("id,x\nk1,1\nk1,2\n", "", "appear more than once, e.g. k1"),
    ("id,x\n,1\n", "", "have an empty key"),
    ("id,z\nk1,1\n", "", "lacks the column(s) x"),
    ("id,x\nk1,1\n", "nope", "--key nope: no such column"),
    ("id,x\nk1,1,9\n", "", "line(s) 2 have a different number of fields"),
    ("id,x\n", "", "a header but no rows"),
])
def test_a_bad_library_is_refused_naming_what_is_wrong(tmp_path: Path, text: str, key: str, says: str) -> None:
    with pytest.raises(StackError, match=None) as caught:
        libraries.load(write(tmp_path / "l.csv", text), key, ["x"])
    assert says in str(caught.value)


MODEL = ModelSpec(columns=(("y", "float"), ("n", "integer")), examples=Path("."))
KINDS = ModelSpec(columns=(("f", "float"), ("i", "integer"), ("b", "boolean"), ("s", "string")), examples=Path("."))


@pytest.mark.parametrize("out, rows, says", [
    ("y,n\n1.5,2\n2.5,3\n", 2, None),
    ("n,y\n2,1.5\n3,2.5\n", 2, "are not the declared"),
    ("y,n\n1.5,2\n", 2, "1 output rows for 2 input rows"),
    ("y,n\n,2\n,3\n", 2, None),  # null in every row of a shard: judged on the whole run, not here
    ("y,n\n1.5,x\n2,3\n", 2, "column n (integer), key k1: 'x' is not a number"),
    ("y,n\n1.5,1e30\n2,3\n", 2, "column n (integer), key k1: 1e30 does not fit in a signed 64-bit integer"),
])
def test_a_shard_output_is_validated(out: str, rows: int, says: str | None) -> None:
    keys = [f"k{n + 1}" for n in range(rows)]
    try:
        validate.check(Table.parse(out), MODEL, keys)
        found = None
    except validate.InvalidOutput as exc:
        found = str(exc)
    assert (found is None) if says is None else (found is not None and says in found), found


@pytest.mark.parametrize("kind, text, value", [
    ("integer", "9007199254740993", 9007199254740993),  # 2**53 + 1: no float in between
    ("integer", "9223372036854775807", 2 ** 63 - 1),
    ("integer", "-9223372036854775808", -2 ** 63),
    ("integer", "3.0", 3), ("integer", "1e5", 100000), ("integer", "-0", 0),
    ("float", "1.5e-7", 1.5e-7), ("float", "-2", -2.0), ("float", "0.1", 0.1),
    ("boolean", "True", True), ("boolean", "0", False),
    ("string", "None", "None"), ("string", "null", "null"), ("string", " x ", " x "),
    ("float", "", None), ("integer", "", None), ("string", "", None), ("boolean", "", None),
])
def test_values_are_read_exactly(kind: str, text: str, value: object) -> None:
    read = values.read(kind, text)
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize("kind, text, says", [
    ("integer", "1_000", "is not a number"), ("float", "1_000.5", "is not a number"),
    ("integer", " 12 ", "is not a number"), ("float", "12 ", "is not a number"), ("integer", "+1", "is not a number"),
    ("integer", "nan", "is not a number"), ("integer", "inf", "is not a number"), ("float", "NaN", "is not a number"),
    ("float", "-Infinity", "is not a number"), ("float", "null", "is not a number"),
    ("integer", "None", "is not a number"), ("integer", "0x10", "is not a number"), ("integer", "１２", "is not a number"),
    ("integer", "3.5", "is not a whole number"),
    ("integer", "9223372036854775808", "does not fit in a signed 64-bit integer"),
    ("integer", "-9223372036854775809", "does not fit in a signed 64-bit integer"),
    ("integer", "1e999999999", "does not fit"), ("float", "1e400", "out of range of a 64-bit float"),
    ("boolean", " true", "is not a boolean"), ("boolean", "yes", "is not a boolean"),
    ("string", "x" * (128 * 1024 + 1), "at most 131072"),
])
def test_values_are_parsed_strictly(kind: str, text: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as caught:
        values.read(kind, text)
    assert says in str(caught.value)


def test_a_value_that_does_not_fit_names_the_key_and_the_column() -> None:
    with pytest.raises(validate.InvalidOutput) as caught:
        validate.check(Table(["y", "n"], [["1", "2"], ["1", "9223372036854775808"]]), MODEL, ["r1", "r2"])
    assert str(caught.value) == "column n (integer), key r2: 9223372036854775808 does not fit in a signed 64-bit integer"


def test_the_all_null_rule_is_judged_on_the_sum_of_the_shards() -> None:
    first = validate.check(Table(["y", "n"], [["", "1"], ["", "2"]]), MODEL, ["a", "b"])
    second = validate.check(Table(["y", "n"], [["1.5", ""], ["", "3"]]), MODEL, ["c", "d"])
    assert first.filled == {"y": 0, "n": 2} and second.filled == {"y": 1, "n": 1}
    assert validate.all_null(validate.total([first.filled, second.filled]), MODEL, what="the run") is None
    assert validate.all_null(first.filled, MODEL, what="the run") == \
        "column y is null in every row of the run: the model predicts nothing there"


def shard(store: Store, digest: str, run: str, number: int, table: Table, keys: list[str],
          model: ModelSpec = MODEL) -> int:
    return store.put_shard(image="m", digest=digest, run=run, shard=number, rows=validate.check(table, model, keys),
                           columns=model.columns)


def test_the_store_keeps_one_row_per_digest_and_key_and_refuses_conflicting_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "p.duckdb") as store:
        store.ensure(MODEL.columns)
        assert shard(store, "sha256:a", "r", 0, Table(["y", "n"], [["1.5", "2"], ["", "3"]]), ["k1", "k2"]) == 2
        # the same key again (another run): the newest prediction
        shard(store, "sha256:a", "r2", 0, Table(["y", "n"], [["9.5", "4"]]), ["k1"])
        assert store.count("sha256:a") == 2 and store.stored_shards("sha256:a", "r") == {0}
        assert store.lookup("m", ["k1", "k2"], MODEL.columns) == [("sha256:a", "k1", 9.5, 4),
                                                                   ("sha256:a", "k2", None, 3)]
        assert store.coverage("m") == {"sha256:a": 2}
        assert store.run_filled("sha256:a", "r", MODEL.columns) == [{"y": 1, "n": 2}]
        with pytest.raises(StackError, match="already has y as DOUBLE"):
            store.ensure((("y", "string"),))
        with pytest.raises(StackError, match="already has y as DOUBLE"):
            store.ensure((("Y", "float"),))
        with pytest.raises(StackError, match="cannot be a column"):
            store.ensure((('x"; DROP TABLE predictions; --', "float"),))
        store.drop_run("sha256:a", "r", ["k1", "k2"])  # a refused run: its rows and records go together
        assert store.count("sha256:a") == 0 and store.stored_shards("sha256:a", "r") == set()


def test_integers_and_text_are_stored_exactly(tmp_path: Path) -> None:
    with Store(tmp_path / "p.duckdb") as store:
        store.ensure(KINDS.columns)
        table = Table(["f", "i", "b", "s"], [["0.1", "9007199254740993", "true", "None"],
                                             ["1e300", "9223372036854775807", "0", "null"],
                                             ["", "-9223372036854775808", "", ""]])
        shard(store, "sha256:a", "r", 0, table, ["k1", "k2", "k3"], KINDS)
        assert store.lookup("m", ["k1", "k2", "k3"], KINDS.columns) == [
            ("sha256:a", "k1", 0.1, 9007199254740993, True, "None"),
            ("sha256:a", "k2", 1e300, 2 ** 63 - 1, False, "null"),
            ("sha256:a", "k3", None, -2 ** 63, None, None)]


def test_model_columns_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "p.duckdb") as store, pytest.raises(StackError) as caught:
        store.ensure((("score", "float"), ("Score", "float")))
    assert "model columns score, Score (spec.yml, the image's model: block) differ only in case" in str(caught.value)


def test_an_export_never_overwrites(tmp_path: Path) -> None:
    assert export_target(tmp_path / "out", "m") == tmp_path / "out" / "predictions-m.parquet"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "predictions-m.parquet").write_bytes(b"old")
    with pytest.raises(StackError, match="is already there and precalc never overwrites an export; remove that file"):
        export_target(tmp_path / "out", "m")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StackError, match="a file, not a folder"):
        export_target(tmp_path / "file", "m")
