"""The bundled stack (base notebook -> data science -> ML and a model) builds, passes its tests and is pushed.

It is built from a copy in its own git repository, with this repo's dodo.py, into the tests' registry,
which holds none of its images: a plain `build` (as `bash setup.sh` runs on a fresh clone) must build
them all because the registry lacks them, and the next `build` must build nothing.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import docker
import pytest

from stacks import REPO, Stack, debian_base, registry_digest

pytestmark = pytest.mark.integration


def test_bundled_stack_builds_tests_and_pushes(tmp_path: Path, registry: str, engine: docker.DockerClient) -> None:
    debian_base(engine)
    stack = Stack(tmp_path / "bundled", registry)
    shutil.copytree(REPO / "images", stack.root / "images")
    shutil.copy(REPO / "spec.yml", stack.root / "spec.yml")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.commit("bundled stack")

    result = stack.doit("build", "--workers", "2", timeout=1800)
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    images = stack.report()["images"]
    assert list(images) == ["base-notebook", "datascience-notebook", "ml-notebook", "iris-model"]
    for name, image in images.items():
        assert image["status"] == "built", (name, image["reason"])
        assert image["reason"] == f"not in registry {registry}"
        assert image["tests"]["passed"] >= 4 and image["tests"]["failed"] == 0
        assert registry_digest(registry, f"example-university/{name}", "2026.4-main") == image["digest"]
    # The model image's own tests and every ancestor's ran against it.
    assert images["iris-model"]["tests"]["passed"] == images["datascience-notebook"]["tests"]["passed"] + 2
    assert images["iris-model"]["parent"].endswith("@" + images["datascience-notebook"]["digest"])
    model = images["iris-model"]["model"]
    assert model["functional"]["passed"] and all(model["functional"]["checks"].values())
    assert model["drift"]["status"] == "no baseline" and model["drift"]["n"] == 922
    # Manifests: pip and apt packages of the real images, and one wiki page per image.
    for name, image in images.items():
        page = stack.root / "wiki" / f"{image['manifest']}.md"
        assert page.is_file(), name
    record = (stack.root / "artifacts" / "manifests" / f"{images['datascience-notebook']['manifest']}.json")
    assert '"scikit-learn"' in record.read_text() and '"python3"' in record.read_text()

    again = stack.doit("build", "--workers", "2")
    assert again.returncode == 0, again.stdout + again.stderr[-4000:]
    assert "nothing to build" in again.stdout + again.stderr
    assert {r["status"] for r in stack.report()["images"].values()} == {"unchanged"}
