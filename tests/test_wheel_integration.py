"""The tool as a user installs it: `python -m build` makes an sdist and a wheel (the wheel built from the sdist),
the wheel goes into a fresh virtual environment outside the repository, and `stack-builder` runs from there:
`init` then `build` pushes a new stack to the real registry; `tree` and `plan` read the predecessor's repository.

Nothing of the repository is on that environment's path: what the tool needs at run time must be in the wheel.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator

import docker
import git
import pytest

from stack_builder.registry.client import RegistryClient
from stack_builder.starter.scaffold import workflow_templates
from stacks import REPO, debian_base

pytestmark = pytest.mark.integration

DATAHUB = REPO / "tests" / "fixtures" / "datahub-docker-stack"


def pyproject_version() -> str:
    import tomllib

    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin folder of a fresh virtual environment with the wheel installed (and its dependencies)."""
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    # From outside the repository: its build/ folder must not shadow PyPA's build.
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPO)], cwd=work,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    started = time.monotonic()
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheels[0])],
                             cwd=work, capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    print(f"wheel {wheels[0].name}: {wheels[0].stat().st_size:,} bytes; sdist {sdists[0].stat().st_size:,} bytes; "
          f"installed with its dependencies in {time.monotonic() - started:.1f} s")
    yield venv / "bin"


def test_the_wheel_holds_what_the_command_needs_at_run_time(installed: Path) -> None:
    wheel = next((installed.parent.parent / "dist").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "stack_builder/spec/spec.schema.json" in names
    assert "stack_builder/checks/pytest_plugin.py" in names  # the image tests' fixtures
    assert {f"stack_builder/starter/workflows/{name}" for name in workflow_templates()} <= names
    assert not any(name.startswith(("tests/", "images/")) for name in names)  # the stack's tests stay its own
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "stack-builder = stack_builder.apps.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def run(bin_folder: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`stack-builder ARGS` from the installed environment, with none of the suite's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STACK_", "COSIGN_", "GITHUB_", "PYTHON"))}
    clean["PATH"] = f"{bin_folder}:{clean['PATH']}"
    return subprocess.run([str(bin_folder / "stack-builder"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**clean, **env})


def test_version_is_the_projects(installed: Path, tmp_path: Path) -> None:
    done = run(installed, ["--version"], tmp_path)
    assert done.returncode == 0 and done.stdout.splitlines()[0] == f"stack-builder {pyproject_version()}"


def test_init_then_build_pushes_a_tested_image_stamped_with_the_version(installed: Path, tmp_path: Path,
                                                                        registry: str,
                                                                        engine: docker.DockerClient) -> None:
    debian_base(engine)  # the root builds FROM debian:bookworm-slim, as the bundled stack does
    stack = tmp_path / "new-stack"
    stack.mkdir()
    started = time.monotonic()  # from an empty folder to pushed images (the commit included)
    made = run(installed, ["init", "--model"], stack)
    assert made.returncode == 0, made.stderr
    repo = git.Repo(stack)
    repo.git.add(A=True)
    repo.git.commit("-m", "a new stack", env={"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                                              "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    built = run(installed, ["build"], stack, STACK_REGISTRY=registry)
    print(f"empty folder -> init -> commit -> build: 2 images pushed in {time.monotonic() - started:.1f} s")
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    report = json.loads((stack / "artifacts" / "build-report.json").read_text())
    assert report["builder"] == pyproject_version() and report["format_version"] == 1
    assert {n: r["status"] for n, r in report["images"].items()} == {"base": "built", "base-model": "built"}
    assert report["images"]["base"]["tests"]["passed"] == 1  # the test init wrote ran, and passed
    assert report["images"]["base-model"]["model"]["functional"]["passed"] is True
    client = RegistryClient(registry)
    for name in ("base", "base-model"):
        digest = client.manifest_digest(f"my-org/{name}", report["tag"])
        assert digest is not None and digest == report["images"][name]["digest"], name
        manifest = json.loads(client.get_manifest(f"my-org/{name}", digest).body)  # type: ignore[union-attr]
        config = json.loads(client.get_blob(f"my-org/{name}", manifest["config"]["digest"]))
        assert config["config"]["Labels"]["io.stack-builder.version"] == pyproject_version()
    page = (stack / "wiki" / f"base-{report['tag'].rsplit('-', 1)[0]}-git-{repo.head.commit.hexsha[:12]}.md")
    assert f"| Built by | stack-builder {pyproject_version()} |" in page.read_text()


def test_tree_and_plan_read_the_predecessors_repository(installed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "datahub-docker-stack"
    shutil.copytree(DATAHUB, folder)
    repo = git.Repo.init(folder, initial_branch="main")
    repo.git.add(A=True)
    repo.git.commit("-m", "datahub", env={"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.invalid",
                                          "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.invalid"})
    tree = run(installed, ["tree", "--all"], folder)
    assert tree.returncode == 0, tree.stderr
    assert [line.split("[")[0].rstrip() for line in tree.stdout.splitlines()[0:3]] == [
        "datascience-notebook", "├── rstudio-notebook", "└── scipy-ml-notebook"]
    plan = run(installed, ["plan", "--all", "--registry", "127.0.0.1:1"], folder)
    assert plan.returncode == 0, plan.stderr
    assert [[job["image"] for job in level] for level in json.loads(plan.stdout)["levels"]] == [
        ["datascience-notebook"], ["rstudio-notebook", "scipy-ml-notebook"]]
