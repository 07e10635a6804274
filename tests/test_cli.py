"""User mistakes on the command line: one clear message, non-zero exit, no traceback, nothing done."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import git
import pytest

from stacks import DODO, REPO, STACK_BUILDER, MakeStack, Stack

SPEC = "images:\n  a: {image_name: o/a}\n  b: {image_name: o/b, depend_on: a}\ntag: {prefix: '2024.1'}\n"


@pytest.fixture
def stack(make_stack: MakeStack) -> Stack:
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


DATAHUB = REPO / "tests" / "fixtures" / "datahub-docker-stack"


@pytest.fixture
def datahub(tmp_path: Path) -> Path:
    """The predecessor's repository (its own dodo.py and scripts/ package), as a git repository."""
    folder = tmp_path / "datahub-docker-stack"
    shutil.copytree(DATAHUB, folder)
    repo = git.Repo.init(folder, initial_branch="main")
    repo.git.add(A=True)
    repo.git.commit("-m", "datahub", "--author", "Test <test@example.invalid>",
                    env={"GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.invalid"})
    return folder


def test_doit_with_our_dodo_cannot_run_there(datahub: Path) -> None:
    # Why the command exists: doit imports the stack's own dodo.py (and with it their scripts package).
    result = subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(datahub), "tree"],
                            capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


def test_stack_builder_runs_in_a_stack_with_its_own_dodo_and_scripts(datahub: Path, tmp_path: Path) -> None:
    tree = subprocess.run([str(STACK_BUILDER), "tree", "--all"], cwd=datahub, capture_output=True, text=True,
                          check=False)
    assert tree.returncode == 0, tree.stdout + tree.stderr
    assert [line.split("[")[0].rstrip() for line in tree.stdout.splitlines()[0:3]] == [
        "datascience-notebook", "├── rstudio-notebook", "└── scipy-ml-notebook"]
    # From elsewhere, with -d; the plan names each image with its parent.
    plan = subprocess.run([str(STACK_BUILDER), "-d", str(datahub), "plan", "--all", "--registry", "127.0.0.1:1"],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    data = json.loads((datahub / "artifacts" / "plan.json").read_text())
    assert {name: entry["image"] for name, entry in data["parents"].items()} == {
        "datascience-notebook": None, "rstudio-notebook": "datascience-notebook",
        "scipy-ml-notebook": "datascience-notebook"}
    assert [[job["image"] for job in level] for level in data["levels"]] == [
        ["datascience-notebook"], ["rstudio-notebook", "scipy-ml-notebook"]]
    assert not (datahub / "__pycache__").exists() and not (datahub / "scripts" / "__pycache__").exists()


def test_stack_builder_names_a_missing_stack_folder(tmp_path: Path) -> None:
    result = subprocess.run([str(STACK_BUILDER), "-d", str(tmp_path / "nope"), "tree"], capture_output=True,
                            text=True, check=False)
    refused(result, "no such folder")


def pyproject_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def test_version_names_the_tool_and_doit() -> None:
    import doit.version

    result = subprocess.run([str(STACK_BUILDER), "--version"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # The tool's own version is pyproject's, the one place it is written; doit's follows.
    assert lines[0] == f"stack-builder {pyproject_version()}"
    assert lines[1].startswith(f"doit {'.'.join(map(str, doit.version.VERSION))} ")


def test_version_of_a_source_tree_that_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    from stack_builder.version import UNKNOWN, source_tree_version, version

    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert version() == pyproject_version()  # read from the pyproject.toml beside the package
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert source_tree_version(tmp_path / "pyproject.toml") == UNKNOWN
    assert source_tree_version(tmp_path / "missing.toml") == UNKNOWN


def test_the_package_says_its_version() -> None:
    import stack_builder

    assert stack_builder.__version__ == pyproject_version()


def test_doit_says_its_own_version_in_a_folder_with_our_dodo() -> None:
    import doit.version

    result = subprocess.run([sys.executable, "-m", "doit", "--version"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ".".join(map(str, doit.version.VERSION))
