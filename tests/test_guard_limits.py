"""The guard's low findings, each with a clear error or a safe default (git, specs, URLs, the engine)."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import docker
import git
import pytest

from stack_builder.config import Config
from stack_builder.engine import containers
from stack_builder.errors import GitError, SpecError, StackError, StepFailed
from stack_builder.plan import changes
from stack_builder.plan.revision import _source_url
from stack_builder.plan.tree import StackTree
from stack_builder.spec.references import check_registry
from stack_builder.spec.stack_spec import load_spec, parse_spec
from stacks import Stack

SPEC = "images:\n  x:\n    image_name: ghcr.io/a/b\n{extra}tag: {{prefix: '2024.1'}}\n"


def refused(text: str, tmp_path: Path) -> str:
    with pytest.raises(SpecError) as raised:
        parse_spec(text, path=tmp_path / "spec.yml", stack_dir=tmp_path, check_files=False)
    return str(raised.value)


def test_a_drift_sample_past_the_cap_is_a_spec_error(tmp_path: Path) -> None:
    model = ("    model:\n      columns: {y: float}\n      drift: {epsilon: 0.001, delta: 0.0001}\n")
    assert "need 4,605,171 samples, more than 100,000" in refused(SPEC.format(extra=model), tmp_path)


def test_an_image_key_too_long_for_its_file_names_is_a_spec_error(tmp_path: Path) -> None:
    text = SPEC.format(extra="").replace("  x:", "  " + "x" * 150 + ":")
    assert "is 150 characters, more than 100" in refused(text, tmp_path)


def test_a_name_too_long_on_the_registry_is_refused(tmp_path: Path) -> None:
    (tmp_path / "images" / "x").mkdir(parents=True)
    (tmp_path / "images" / "x" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "spec.yml").write_text(SPEC.format(extra="").replace("ghcr.io/a/b", "ghcr.io/" + "a" * 245))
    config = Config(stack_dir=tmp_path, spec=load_spec(tmp_path), registry="")
    with pytest.raises(StackError, match="more than the 255 a registry accepts"):
        config.with_registry("127.0.0.1:5000")


@pytest.mark.parametrize("bad", ["127.0.0.1:99999", "127.0.0.1:0", "host:65536"])
def test_ports_are_checked(bad: str) -> None:
    with pytest.raises(StackError, match="is not from 1 to 65535"):
        check_registry(bad)


def test_source_labels_carry_no_user_info_or_query(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path)
    repo.create_remote("origin", "https://bot:ghp_secret@github.com:443/org/stack.git?token=abc#frag")
    assert _source_url(repo, {}) == "https://github.com:443/org/stack"


def test_spec_yml_is_never_ignored(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack", None)
    stack.write("spec.yml", SPEC.format(extra="") + 'change_ignore: ["*.yml"]\n')
    stack.write("images/x/Dockerfile", "FROM scratch\n")
    base = stack.commit("start")
    stack.write("spec.yml", SPEC.format(extra="    build_args: {A: '1'}\n") + 'change_ignore: ["*.yml"]\n')
    spec = load_spec(stack.root)
    selection = changes.select(spec, StackTree(spec), base_ref=base)
    assert {n: r.text for n, r in selection.reasons.items()} == {"x": "changed: spec.yml entry"}


def test_a_shallow_clone_is_told_to_fetch_more_history(tmp_path: Path) -> None:
    origin = Stack(tmp_path / "origin", None)
    origin.write("a.txt", "1\n")
    origin.commit("one")
    origin.write("a.txt", "2\n")
    origin.commit("two")
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{origin.root}", str(tmp_path / "shallow")],
                   check=True)
    with pytest.raises(GitError, match="this clone is shallow: fetch more history"):
        changes.resolve_base(git.Repo(tmp_path / "shallow"), "HEAD~1", {})


@pytest.mark.integration
def test_a_container_that_cannot_start_is_not_left_behind(engine: docker.DockerClient, test_base: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = uuid.uuid4().hex[:12]
    monkeypatch.setenv(containers.RUN_VAR, run_id)
    tracked = containers.TrackedContainers(engine, test_base, gpu=True)  # this engine has no GPU
    with pytest.raises(containers.GpuUnavailable):
        tracked.start(["true"])
    assert engine.containers.list(all=True, filters={"label": f"{containers.RUN_LABEL}={run_id}"}) == []


@pytest.mark.integration
def test_a_file_read_out_of_a_container_must_be_a_regular_file(engine: docker.DockerClient, test_base: str) -> None:
    with pytest.raises(StepFailed, match="is a symlink"):
        containers.run(engine, test_base, ["sh", "-c", "ln -s /bin/busybox /out.csv"], timeout=60, what="a model",
                       files_out=["/out.csv"])
    done = containers.run(engine, test_base, ["sh", "-c", "echo a,b > /out.csv"], timeout=60, what="a model",
                          files_out=["/out.csv"])
    assert done.files["/out.csv"] == b"a,b\n"
