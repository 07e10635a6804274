"""Hostile YAML and JSON: refused at once, with messages that name the place and stay small."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from stack_builder.errors import GitError, SpecError, StackError, shown
from stack_builder.pipeline.merge import planned_images
from stack_builder.plan.changes import _github_base, open_repo
from stack_builder.records.files import read_json
from stack_builder.spec.stack_spec import parse_spec

GOOD = "images:\n  x:\n    image_name: ghcr.io/a/b\ntag: {prefix: '2024.1'}\n"


def refuse(text: str, tmp_path: Path) -> str:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    return str(raised.value)


def billion_laughs(levels: int = 7, width: int = 9) -> str:
    lines = ["lol0: &lol0 [" + ", ".join(['"lol"'] * width) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"lol{level}: &lol{level} [" + ", ".join([f"*lol{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n" + GOOD.replace("ghcr.io/a/b", "ghcr.io/a/b\n    build_args: *lol7")


def test_an_alias_bomb_is_refused_naming_its_line_in_a_short_message(tmp_path: Path) -> None:
    message = refuse(billion_laughs(), tmp_path)
    assert len(message.encode()) < 1024
    assert "spec.yml:6: YAML syntax error: aliases expand this value to more than 100,000 values" in message


def test_a_recursive_alias_and_deep_nesting_are_refused(tmp_path: Path) -> None:
    assert "recursive alias" in refuse("loop: &loop [*loop]\n" + GOOD, tmp_path)
    deep = refuse("deep: " + "[" * 5000 + "]" * 5000 + "\n" + GOOD, tmp_path)
    assert "nested" in deep and len(deep) < 1024


def test_offending_values_are_cut_to_120_characters(tmp_path: Path) -> None:
    name = "ghcr.io/a/" + "B" * 100_000
    message = refuse(GOOD.replace("ghcr.io/a/b", name), tmp_path)
    assert len(message) < 1024 and "…" in message and "BBBB" in message
    long_key = "k" * 1000  # (YAML allows implicit keys up to 1024 characters)
    message = refuse(GOOD.replace("    image_name", f"    {long_key}: 1\n    image_name"), tmp_path)
    assert len(message) < 1024 and "unknown key" in message


def test_an_error_lists_at_most_fifty_problems(tmp_path: Path) -> None:
    extra = "".join(f"    unknown{i}: 1\n" for i in range(300))
    message = refuse(GOOD.replace("    image_name", extra + "    image_name"), tmp_path)
    assert "spec is invalid (300 problems)" in message and "… and 250 more" in message
    assert message.count("unknown key") == 50


def test_shown_cuts_with_an_ellipsis() -> None:
    assert shown("a" * 10) == "a" * 10
    assert shown("a" * 500) == "a" * 119 + "…"
    assert shown(["x"] * 500).endswith("…") and len(shown(["x"] * 500)) == 120


def test_json_files_that_are_not_json_name_the_file_briefly(tmp_path: Path) -> None:
    broken = tmp_path / "plan.json"
    broken.write_text("{" + "x" * 100_000)
    with pytest.raises(StackError) as raised:
        read_json(broken, what="the plan")
    assert str(broken) in str(raised.value) and "is not valid JSON" in str(raised.value)
    assert len(str(raised.value)) < 600
    assert read_json(tmp_path / "absent.json", what="x", default=[]) == []
    broken.write_text(json.dumps({"images": "base-notebook"}))
    with pytest.raises(StackError, match="'images' is not a list of image names"):
        planned_images(tmp_path)
    broken.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StackError, match="nested too deeply"):
        read_json(broken, what="the plan")


def test_a_hostile_push_payload_is_refused(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    import git
    git.Repo.init(repo_dir)
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps({"before": "$(rm -rf /)" + "x" * 10_000}))
    env = {"GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(payload)}
    with pytest.raises(GitError) as raised:
        _github_base(open_repo(repo_dir), env)
    assert "is not a commit id" in str(raised.value) and len(str(raised.value)) < 300

