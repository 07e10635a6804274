"""User mistakes on the command line: one clear message, non-zero exit, no traceback, nothing done."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stacks import DODO, Stack

SPEC = "images:\n  a: {image_name: o/a}\n  b: {image_name: o/b, depend_on: a}\ntag: {prefix: '2024.1'}\n"


@pytest.fixture
def stack(make_stack) -> Stack:
    s = make_stack(registry="127.0.0.1:1")  # nothing listens there: none of these may reach a registry
    s.write("spec.yml", SPEC)
    s.write("images/a/Dockerfile", "FROM scratch\n")
    s.write("images/b/Dockerfile", "FROM scratch\n")
    s.commit()
    return s


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output


@pytest.mark.parametrize("args,message", [
    (["--registry", "https://ghcr.io"], "registry 'https://ghcr.io' is not HOST[:PORT]"),
    (["--image", "c"], "--image names no image in spec.yml: 'c'; images are: a, b"),
    (["--workers", "0"], "--workers must be at least 1, not 0"),
    (["--base-ref", "v9"], "--base-ref 'v9' is not a commit in this repository"),
])
def test_bad_build_arguments(stack: Stack, args: list[str], message: str) -> None:
    refused(stack.doit("build", *args), message)
    assert not (stack.root / "artifacts" / "build-report.json").exists()


def test_bad_registry_from_environment(stack: Stack) -> None:
    refused(stack.doit("build", "--all", env={"STACK_REGISTRY": "ghcr.io/org"}), "registry 'ghcr.io/org' is not")


def test_stack_folder_without_spec(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(tmp_path), "build"],
                            capture_output=True, text=True, check=False)
    refused(result, "no spec found in")


def test_not_a_git_repository_suggests_all(tmp_path: Path) -> None:
    (tmp_path / "images" / "a").mkdir(parents=True)
    (tmp_path / "images" / "a" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "spec.yml").write_text("images:\n  a: {image_name: o/a}\ntag: {prefix: '2024.1'}\n")
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(tmp_path), "tree"],
                            capture_output=True, text=True, check=False)
    refused(result, "is not in a git repository")
    assert "--all" in result.stdout + result.stderr


def test_tree_marks_reasons(stack: Stack) -> None:
    stack.repo.git.checkout("-b", "work")
    stack.write("images/a/extra", "x\n")
    stack.commit()
    result = stack.doit("tree")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("a ") and line.endswith("[build: changed: images/a/extra]") for line in lines)
    assert any("└── b" in line and line.endswith("[build: descendant of a]") for line in lines)
    assert "2 of 2 images would be built (base: merge-base with main" in result.stdout
