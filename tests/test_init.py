"""`stack-builder init`: the files of a new stack, and the command that writes them (no engine needed here; the
build of what it makes, from an installed wheel, is tests/test_wheel_integration.py)."""
from __future__ import annotations

import os
import stat
import subprocess
from datetime import date
from pathlib import Path

import git
import pytest
import yaml

from stack_builder.spec.loader import load_spec, parse_spec
from stack_builder.starter.scaffold import VERSION_TOKEN, StarterOptions, problems, starter_files, workflow_templates
from stack_builder.version import version
from stacks import STACK_BUILDER


def options(**given: object) -> StarterOptions:
    values: dict[str, object] = {"name": "base-notebook", "owner": "example-university", "model": False,
                                 "version": "9.8.7", "today": date(2026, 12, 5)}
    values.update(given)
    return StarterOptions(**values)  # type: ignore[arg-type]


def test_the_spec_declares_one_root_image_that_passes_the_specs_own_checks(tmp_path: Path) -> None:
    files = starter_files(options())
    spec = parse_spec(files["spec.yml"].text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    assert list(spec.images) == ["base-notebook"]
    assert str(spec.images["base-notebook"].repository) == "ghcr.io/example-university/base-notebook"
    assert spec.images["base-notebook"].parent is None
    assert spec.tag_prefix == "2026.4"  # the quarter of today
    assert yaml.safe_load(files["spec.yml"].text)["version"] == 1


def test_the_root_image_has_a_dockerfile_and_a_real_test() -> None:
    files = starter_files(options())
    assert "FROM debian:bookworm-slim" in files["images/base-notebook/Dockerfile"].text
    test = files["images/base-notebook/test/test_base_notebook.py"].text
    compile(test, "test_base_notebook.py", "exec")
    assert 'entrypoint=["hello"]' in test and '"hello from base-notebook"' in test
    assert set(files) >= {"spec.yml", ".gitignore", "README.md"}
    assert "artifacts/" in files[".gitignore"].text.splitlines()


def test_a_model_adds_a_child_with_columns_examples_and_reference_output(tmp_path: Path) -> None:
    files = starter_files(options(model=True))
    spec = parse_spec(files["spec.yml"].text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    model = spec.images["base-notebook-model"]
    assert model.parent == "base-notebook" and model.model is not None
    assert dict(model.model.columns) == {"chars": "integer"}
    assert files["images/base-notebook-model/predict"].mode == 0o755
    inputs = files["images/base-notebook-model/examples/input.csv"].text.splitlines()
    outputs = files["images/base-notebook-model/examples/output.csv"].text.splitlines()
    assert outputs[0] == "chars" and len(outputs) == len(inputs)
    # The reference output is what the model's awk program says of the input: the length of its first field.
    assert outputs[1:] == [str(len(row.split(",")[0])) for row in inputs[1:]]
    assert "images/base-notebook-model/Dockerfile" not in starter_files(options())


def test_the_workflows_are_the_shipped_callers_pinned_to_this_version() -> None:
    templates = workflow_templates()
    assert templates, "no caller workflow templates in stack_builder/starter/workflows"
    files = starter_files(options())
    for name, template in templates.items():
        written = files[f".github/workflows/{name}"].text
        assert VERSION_TOKEN in template and VERSION_TOKEN not in written
        uses = [line.split("uses:", 1)[1].strip() for line in written.splitlines() if "uses:" in line]
        assert uses and all(u.endswith("@v9.8.7") for u in uses if u.startswith("stack-builder/")), uses


@pytest.mark.parametrize(("field", "value"), [("name", "Base"), ("name", "a/b"), ("name", "-x"), ("owner", "my org"),
                                              ("owner", "")])
def test_names_that_cannot_be_image_names_are_refused(field: str, value: str) -> None:
    found = problems(options(**{field: value}))
    assert len(found) == 1 and found[0].startswith(f"--{field} {value!r}"), found
    assert problems(options()) == []


def init(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACK_")}
    return subprocess.run([str(STACK_BUILDER), "init", *args], cwd=folder, capture_output=True, text=True,
                          timeout=120, env=env)


def test_init_makes_a_git_repository_with_a_stack_that_loads(tmp_path: Path) -> None:
    done = init(tmp_path, "--name", "notebook", "--model")
    assert done.returncode == 0, done.stderr
    assert git.Repo(tmp_path).active_branch.name == "main"
    spec = load_spec(tmp_path)  # every image's Dockerfile is there
    assert list(spec.images) == ["notebook", "notebook-model"]
    assert str(spec.images["notebook"].repository) == "ghcr.io/my-org/notebook"
    assert stat.S_IMODE((tmp_path / "images/notebook-model/predict").stat().st_mode) == 0o755
    assert f"stack-builder {version()}" in done.stdout and "created spec.yml" in done.stdout
    assert {p.name for p in (tmp_path / ".github" / "workflows").iterdir()} == set(workflow_templates())


def test_init_takes_the_owner_from_the_github_remote(tmp_path: Path) -> None:
    git.Repo.init(tmp_path, initial_branch="main").create_remote("origin", "git@github.com:UCSD-ETS/stack.git")
    assert init(tmp_path).returncode == 0
    assert "image_name: ghcr.io/ucsd-ets/base" in (tmp_path / "spec.yml").read_text()


def test_init_refuses_to_overwrite_naming_the_files_and_writes_nothing(tmp_path: Path) -> None:
    git.Repo.init(tmp_path, initial_branch="main")
    (tmp_path / "spec.yml").write_text("mine\n")
    (tmp_path / "README.md").write_text("my readme\n")
    done = init(tmp_path)
    assert done.returncode != 0
    assert "would overwrite 2 existing file(s)" in done.stderr and "README.md, spec.yml" in done.stderr
    assert "nothing was written" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "spec.yml").read_text() == "mine\n"
    assert not (tmp_path / "images").exists() and not (tmp_path / ".gitignore").exists()
    forced = init(tmp_path, "--force")
    assert forced.returncode == 0, forced.stderr
    assert "overwrote spec.yml" in forced.stdout and "created .gitignore" in forced.stdout
    assert load_spec(tmp_path).images["base"].parent is None


def test_init_with_a_bad_name_says_so_and_writes_nothing(tmp_path: Path) -> None:
    done = init(tmp_path, "--name", "Bad Name")
    assert done.returncode != 0
    assert "--name 'Bad Name': an image name is lower-case" in done.stderr and "Traceback" not in done.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name != ".doit.json"] == []


def test_init_does_not_write_through_a_link_with_force(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me\n")
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "README.md").symlink_to(outside)
    assert init(stack).returncode != 0  # a link is an existing file too
    assert init(stack, "--force").returncode == 0
    assert outside.read_text() == "keep me\n" and not (stack / "README.md").is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_init_never_writes_through_a_linked_folder(tmp_path: Path, force: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / ".github").symlink_to(outside)
    done = init(stack, *(["--force"] if force else []))
    assert done.returncode != 0
    assert "init would write through 1 linked folder(s)" in done.stderr and ".github" in done.stderr
    assert list(outside.iterdir()) == [] and not (stack / "spec.yml").exists()
