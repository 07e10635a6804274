"""Precalculation's pure parts: the library's checks, sampling and shards; a shard's validation; the store."""
from __future__ import annotations

from pathlib import Path

import pytest

from stack_builder.checks.modelcheck import Table
from stack_builder.errors import StackError, StepFailed
from stack_builder.precalc import library as libraries
from stack_builder.precalc import validate
from stack_builder.precalc.store import Store
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


@pytest.mark.parametrize("out, rows, says", [
    ("y,n\n1.5,2\n2.5,3\n", 2, None),
    ("n,y\n2,1.5\n3,2.5\n", 2, "are not the declared"),
    ("y,n\n1.5,2\n", 2, "1 output rows for 2 input rows"),
    ("y,n\n,2\nnan,3\n", 2, "column y is null in every row"),
    ("y,n\n1.5,x\n2,3\n", 2, "column n is not integer in row(s) 1"),
    ("y,n\n1.5,1e30\n2,3\n", 2, "column n is not integer in row(s) 1"),
])
def test_a_shard_output_is_validated(out: str, rows: int, says: str | None) -> None:
    found = validate.problem(Table.parse(out), MODEL, rows)
    assert (found is None) if says is None else (found is not None and says in found), found


def test_the_store_keeps_one_row_per_digest_and_key_and_refuses_conflicting_columns(tmp_path: Path) -> None:
    with Store(tmp_path / "p.duckdb") as store:
        store.ensure(MODEL.columns)
        table = Table(["y", "n"], [["1.5", "2"], ["", "3"]])
        assert store.put_shard(image="m", digest="sha256:a", run="r", shard=0, keys=["k1", "k2"], output=table,
                               columns=MODEL.columns) == 2
        again = Table(["y", "n"], [["9.5", "4"]])  # the same key again (another run): the newest prediction
        store.put_shard(image="m", digest="sha256:a", run="r2", shard=0, keys=["k1"], output=again,
                        columns=MODEL.columns)
        assert store.count("sha256:a") == 2 and store.stored_shards("sha256:a", "r") == {0}
        assert store.lookup("m", ["k1", "k2"], MODEL.columns) == [("sha256:a", "k1", 9.5, 4),
                                                                   ("sha256:a", "k2", None, 3)]
        assert store.coverage("m") == {"sha256:a": 2}
        with pytest.raises(StackError, match="already has y as DOUBLE"):
            store.ensure((("y", "string"),))
        with pytest.raises(StackError, match="already has y as DOUBLE"):
            store.ensure((("Y", "float"),))
        with pytest.raises(StackError, match="cannot be a column"):
            store.ensure((('x"; DROP TABLE predictions; --', "float"),))
        with pytest.raises(StepFailed, match="not stored"):  # a shard the database refuses: nothing of it stays
            store.put_shard(image="m", digest="sha256:b", run="r", shard=1, keys=["k1", "k2"],
                            output=Table(["y", "n"], [["1", "1"], ["2", "1e30"]]), columns=MODEL.columns)
        assert store.count("sha256:b") == 0 and store.stored_shards("sha256:b", "r") == set()
