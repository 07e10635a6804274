"""The input key: every input changes it; what the engine never sees (.dockerignore, test byproducts) does not."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stack_builder.engine import inputkey


@pytest.fixture
def context(tmp_path: Path) -> Path:
    folder = tmp_path / "image"
    (folder / "src").mkdir(parents=True)
    (folder / "Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY src /src\n")
    (folder / "src" / "app.py").write_text("print('hello')\n")
    (folder / "notes.log").write_text("build notes\n")
    (folder / ".dockerignore").write_text("# logs are not sent\n*.log\nscratch/\n")
    return folder


def key(context: Path, **changes: Any) -> str:
    inputs: dict[str, Any] = {"context": context, "dockerfile": context / "Dockerfile", "build_args": {"A": "1"},
                              "secret_ids": ["pip"], "platform": "linux/amd64", "parent": "sha256:" + "1" * 64}
    inputs.update(changes)
    inputkey.folder_digest.cache_clear()  # the cache is per run; these calls are separate "runs"
    return inputkey.input_key(**inputs)


def test_the_key_is_stable_and_names_its_hash(context: Path) -> None:
    first = key(context)
    assert first == key(context)
    assert first.startswith("sha256:") and len(first) == 71


@pytest.mark.parametrize("change", [
    {"build_args": {"A": "2"}},
    {"build_args": {"A": "1", "B": "1"}},
    {"secret_ids": ["pip", "token"]},
    {"platform": "linux/arm64"},
    {"parent": "sha256:" + "2" * 64},
])
def test_each_declared_input_changes_the_key(context: Path, change: dict[str, Any]) -> None:
    assert key(context, **change) != key(context)


def test_context_files_dockerfile_and_modes_change_the_key(context: Path) -> None:
    before = key(context)
    (context / "src" / "app.py").write_text("print('changed')\n")
    after_content = key(context)
    assert after_content != before
    (context / "src" / "new.py").write_text("")
    after_new = key(context)
    assert after_new != after_content
    os.chmod(context / "src" / "new.py", 0o755)
    after_mode = key(context)
    assert after_mode != after_new
    (context / "Dockerfile").write_text((context / "Dockerfile").read_text() + "RUN true\n")
    assert key(context) != after_mode


def test_what_dockerignore_leaves_out_does_not_count(context: Path) -> None:
    before = key(context)
    (context / "notes.log").write_text("other notes\n")
    (context / "scratch").mkdir()
    (context / "scratch" / "big.bin").write_bytes(b"\0" * 1024)
    assert key(context) == before
    (context / ".dockerignore").write_text("*.log\n")  # scratch/ is sent now
    with_scratch = key(context)
    (context / "scratch" / "big.bin").unlink()
    (context / "scratch").rmdir()
    assert with_scratch != key(context)  # the same .dockerignore: only scratch/ differs


def test_a_dockerfile_specific_ignore_file_wins(context: Path) -> None:
    (context / "Dockerfile.dockerignore").write_text("src/\n")
    before = key(context)
    (context / "src" / "app.py").write_text("print('ignored by Dockerfile.dockerignore')\n")
    assert key(context) == before


def test_group_write_bits_and_test_byproducts_do_not_count(context: Path) -> None:
    before = key(context)
    os.chmod(context / "src" / "app.py", 0o664)  # another umask on another clone
    (context / "src" / "__pycache__").mkdir()
    (context / "src" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\1\2")
    assert key(context) == before


def test_the_tests_an_image_must_pass_are_inputs(context: Path, tmp_path: Path) -> None:
    shared = tmp_path / "tests_common"
    shared.mkdir()
    (shared / "test_python.py").write_text("def test_ok():\n    assert True\n")
    before = key(context, tests=[shared])
    (shared / "test_python.py").write_text("def test_ok():\n    assert 1\n")
    assert key(context, tests=[shared]) != before


def test_a_recipe_chain_is_an_input_and_one_dockerfile_keeps_its_old_key(context: Path) -> None:
    plain = key(context)
    assert key(context, recipes=()) == plain  # a single Dockerfile: the key it always had
    second = context / "Dockerfile.conda"
    second.write_text("FROM scratch\nCOPY a.txt /conda\n")
    chain = key(context, recipes=(context / "Dockerfile", second))
    assert chain != plain
    second.write_text("FROM scratch\nCOPY a.txt /other\n")  # a later recipe changed: another key
    assert key(context, recipes=(context / "Dockerfile", second)) != chain
