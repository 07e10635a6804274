"""A spec that passed its shape check is remembered, and the same document is not checked against the schema again;
a spec that failed, a changed one, or data JSON cannot say exactly is always checked."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from stack_builder.errors import SpecError
from stack_builder.spec import shape
from stack_builder.spec.loader import parse_spec

GOOD = "images:\n  base:\n    image_name: ghcr.io/org/base\ntag: {prefix: '2024.1'}\n"


def parse(text: str, folder: Path, memo: Path | None) -> list[str]:
    return list(parse_spec(text, path=folder / "spec.yml", stack_dir=folder, check_files=False, memo=memo).images)


def no_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise AssertionError("the schema was checked again")
    monkeypatch.setattr(shape, "_validator", refuse)


def test_a_passed_spec_is_not_checked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = tmp_path / "memo"
    assert parse(GOOD, tmp_path, memo) == ["base"]
    assert len(list(memo.iterdir())) == 1
    no_validator(monkeypatch)
    assert parse(GOOD, tmp_path, memo) == ["base"]
    with pytest.raises(AssertionError, match="checked again"):  # another document is checked
        parse(GOOD.replace("base", "root"), tmp_path, memo)
    with pytest.raises(AssertionError, match="checked again"):  # and without a memo, every time
        parse(GOOD, tmp_path, None)


def test_a_failed_spec_is_never_remembered_and_says_so_every_time(tmp_path: Path) -> None:
    memo = tmp_path / "memo"
    bad = GOOD.replace("image_name", "image_nam")
    for _ in range(2):
        with pytest.raises(SpecError, match="unknown key 'image_nam'"):
            parse(bad, tmp_path, memo)
    assert not memo.exists() or list(memo.iterdir()) == []


@pytest.mark.parametrize("data", [{"images": {}, "when": __import__("datetime").date(2024, 1, 1)},
                                  {"images": {1: "x"}}, {"images": {}, "x": float("nan")}])
def test_data_json_cannot_say_exactly_is_always_checked(data: dict[str, object]) -> None:
    assert shape._memo_key(data) is None


def test_the_key_tells_apart_what_json_tells_apart() -> None:
    keys = {shape._memo_key({"v": value}) for value in (1, 1.0, True, "1", None, [1])}
    assert len(keys) == 6


def test_a_cache_that_cannot_be_written_costs_nothing_but_time(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert parse(GOOD, tmp_path, blocked / "memo") == ["base"]


def test_the_oldest_half_is_forgotten_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = tmp_path / "memo"
    memo.mkdir()
    monkeypatch.setattr(shape, "MEMO_ENTRIES", 4)
    for number in range(4):
        (memo / f"old{number}").touch()
        os.utime(memo / f"old{number}", (number, number))
    parse(GOOD, tmp_path, memo)
    left = sorted(path.name for path in memo.iterdir())
    assert len(left) == 2 and "old3" in left and "old0" not in left


def test_a_memo_others_could_write_is_not_believed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    memo = tmp_path / "memo"
    assert parse(GOOD, tmp_path, memo) == ["base"]
    assert memo.stat().st_mode & 0o777 == 0o700
    memo.chmod(0o777)  # a shared folder: anyone could have planted the pass
    no_validator(monkeypatch)
    with pytest.raises(AssertionError, match="checked again"):
        parse(GOOD, tmp_path, memo)
