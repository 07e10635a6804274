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


def test_test_byproducts_do_not_count_but_every_mode_bit_does(context: Path) -> None:
    before = key(context)
    (context / "src" / "__pycache__").mkdir()
    (context / "src" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\1\2")
    assert key(context) == before
    os.chmod(context / "src" / "app.py", 0o600)  # BuildKit copies the mode: the image's file changes with it
    assert key(context) != before


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


# -- .dockerignore as BuildKit reads it --------------------------------------------------------------------


@pytest.mark.parametrize(("patterns", "path", "left_out"), [
    (["*.TXT"], "config.txt", False),  # case-sensitive (docker-py's matcher ignored case)
    (["*.txt"], "config.txt", True),
    (["[!a]*"], "b.py", False),  # [!a] is "! or a", not a negation
    (["[!a]*"], "a.py", True),
    (["[^a]*"], "b.py", True),  # [^a] negates
    (["[^a]*"], "a.py", False),
    (["**/*.log"], "deep/er/x.log", True),
    (["**/*.log"], "x.log", True),  # **/ may be no folder at all
    (["docs/**"], "docs/a/b.md", True),
    (["a/**/z"], "a/z", True),
    (["a/**/z"], "a/b/c/z", True),
    (["*.md", "!README.md"], "README.md", False),  # the last matching pattern wins
    (["*.md", "!README.md", "README*"], "README.md", True),
    (["scratch/"], "scratch/big.bin", True),  # a folder leaves out what is under it
    (["/scratch"], "scratch/big.bin", True),  # a leading / is dropped
    (["./a//b/"], "a/b/c", True),  # cleaned like a path
    (["secret", "!secret/keep"], "secret/keep", False),
    (["secret", "!secret/keep"], "secret/other", True),
    (["?.py"], "ab.py", False),
    (["*"], "sub/file", True),  # * matches the folder sub, and so everything under it
    (["a.b"], "axb", False),  # . is a dot
    ([r"foo\[1"], "foo[1", True),  # an escaped bracket is a bracket
    (["a]"], "a]", True),  # a lone ] is itself
])
def test_dockerignore_is_matched_as_buildkit_matches_it(patterns: list[str], path: str, left_out: bool) -> None:
    from stack_builder.engine import dockerignore
    assert dockerignore.excluded(path, dockerignore.compile_patterns(patterns)) is left_out


def test_a_case_mismatch_in_dockerignore_does_not_hide_a_change(context: Path) -> None:
    (context / ".dockerignore").write_text("*.TXT\n")
    (context / "config.txt").write_text("a = 1\n")
    before = key(context)
    (context / "config.txt").write_text("a = 2\n")  # BuildKit sends it: the image changes
    assert key(context) != before


def test_the_dockerignore_file_is_read_as_buildkit_reads_it(tmp_path: Path) -> None:
    from stack_builder.engine import dockerignore
    ignore = tmp_path / ".dockerignore"
    ignore.write_text("\ufeff# a comment\n\n  *.log  \n! keep.log\n/root/only\nsub//dir/\n")
    assert dockerignore.read_patterns(ignore) == ["*.log", "!keep.log", "root/only", "sub/dir"]


def test_a_broken_dockerignore_pattern_is_a_clear_error(context: Path) -> None:
    from stack_builder.errors import StepFailed
    (context / ".dockerignore").write_text("[abc\n")
    with pytest.raises(StepFailed, match=r"\.dockerignore: pattern '\[abc' is not valid"):
        key(context)


# -- links, tests and model files ---------------------------------------------------------------------------


def test_a_link_counts_by_what_it_resolves_to(context: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "test_real.py").write_text("def test_ok():\n    assert True\n")
    tests = context / "test"
    tests.mkdir()
    (tests / "test_linked.py").symlink_to(shared / "test_real.py")
    before = key(context, tests=[tests], root=tmp_path)
    (shared / "test_real.py").write_text("def test_ok():\n    assert False\n")  # same link text, new test
    assert key(context, tests=[tests], root=tmp_path) != before


def test_a_link_leaving_the_stack_is_refused(context: Path, tmp_path: Path) -> None:
    from stack_builder.errors import StepFailed
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    (context / "src" / "escape.py").symlink_to(outside)
    with pytest.raises(StepFailed, match="outside the stack"):
        key(context, root=context)


def test_a_link_to_a_folder_above_it_does_not_loop(context: Path) -> None:
    (context / "src" / "up").symlink_to(context)
    assert key(context, root=context).startswith("sha256:")


def test_conftest_files_above_the_tests_are_inputs(context: Path, tmp_path: Path) -> None:
    conftest = tmp_path / "conftest.py"
    conftest.write_text("import pytest\n")
    before = key(context, root=tmp_path, test_files=[conftest])
    conftest.write_text("import pytest\npytest_plugins = ['evil']\n")
    assert key(context, root=tmp_path, test_files=[conftest]) != before


def test_model_examples_count_whatever_dockerignore_says(context: Path) -> None:
    examples = context / "examples"
    examples.mkdir()
    (examples / "reference.csv").write_text("y\n1\n")
    (context / ".dockerignore").write_text("examples/\n")
    before = key(context, model_files=[examples])
    (examples / "reference.csv").write_text("y\n2\n")
    assert key(context, model_files=[examples]) != before


def test_links_that_point_at_each_other_do_not_loop(context: Path) -> None:
    (context / "a").mkdir()
    (context / "b").mkdir()
    (context / "a" / "to-b").symlink_to(context / "b")
    (context / "b" / "to-a").symlink_to(context / "a")
    assert key(context, root=context).startswith("sha256:")
