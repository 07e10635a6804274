"""Tags, gates and reports that cannot be subverted: each test is an attack, on the real engine and registry.

Each of these passed (the attack worked) before the guard: a spec reading /proc/self/environ, an
engine error quoting a secret upper-cased, a branch named `stable`, a mixed-commit merge, an
inconsistent promotion, a failing second tag push, a hostile package name, and an image test that
reads its parent's environment.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import docker
import pytest

from faultproxy import fault_proxy
from stack_builder.records import markdown
from stack_builder.registry.client import RegistryClient
from stacks import (STACK_BUILDER, MakeStack, Stack, publish_test_base_index, registry_digest, small_stack,
                    two_platform_stack)

pytestmark = pytest.mark.integration

CANARY = "canary-guard-Pa55-7e1d9c"
ENV = {"STACK_REGISTRY_USER": "ci-bot", "STACK_REGISTRY_PASSWORD": CANARY}


def everything(stack: Stack, *outputs: subprocess.CompletedProcess[str]) -> str:
    """The output, and every file the tool wrote (artifacts, logs, report, wiki, doit's database)."""
    text = "".join(o.stdout + o.stderr for o in outputs)
    for path in stack.root.rglob("*"):
        if path.is_file() and not {".git", "images"} & set(path.relative_to(stack.root).parts):
            text += path.read_text(errors="replace")
    return text


def test_a_spec_cannot_read_files_outside_the_stack(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="confine")
    spec = stack.root / "spec.yml"
    spec.write_text(spec.read_text().replace("  left:\n", "  left:\n    dockerfile: /proc/self/environ\n", 1))
    stack.commit("read the environment")
    result = stack.doit("build", "--all", env=ENV)
    assert result.returncode != 0
    assert "images.left.dockerfile: '/proc/self/environ' resolves to" in result.stdout + result.stderr
    assert "outside the stack folder" in result.stdout + result.stderr
    assert CANARY not in everything(stack, result)
    assert not (stack.root / "artifacts" / "build-report.json").exists()  # refused before any engine call


def test_an_engine_error_quoting_a_secret_in_capitals_is_redacted(make_stack: MakeStack, registry: str,
                                                                  test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="upper")
    (stack.root / "images" / "right" / "Dockerfile").write_text(f"FROM {test_base}\n{CANARY}\n")
    stack.commit("a Dockerfile line the engine quotes back upper-cased")
    result = stack.doit("build", "--image", "right", env=ENV)
    assert result.returncode != 0
    text = everything(stack, result)
    assert "***" in stack.report()["images"]["right"]["reason"]
    assert CANARY.upper() not in text and CANARY not in text


def test_a_branch_named_stable_cannot_forge_a_stable_tag(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="forge")
    stack.commit("initial")
    stack.repo.git.checkout("-b", "stable")
    result = stack.doit("build", "--image", "root")
    assert result.returncode == 0, result.stdout + result.stderr
    tag = stack.report()["tag"]
    assert tag.startswith("2024.1-stable-") and len(tag) == len("2024.1-stable-") + 8
    assert registry_digest(registry, "forge/root", "2024.1-stable") is None
    assert registry_digest(registry, "forge/root", tag) == stack.report()["images"]["root"]["digest"]


def test_the_per_commit_tag_is_written_once(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="once-tag")
    commit = stack.commit("initial")
    first = stack.doit("build", "--image", "root")
    assert first.returncode == 0, first.stdout + first.stderr
    commit_tag = f"2024.1-git-{commit[:12]}"
    original = registry_digest(registry, "once-tag/root", commit_tag)
    again = stack.doit("build", "--image", "root", "--no-reuse")  # a new digest (another created label)
    assert again.returncode == 0, again.stdout + again.stderr
    root = stack.report()["images"]["root"]
    assert root["digest"] != original
    assert registry_digest(registry, "once-tag/root", commit_tag) == original
    assert commit_tag not in root["tags"] and root["moved"] == {"2024.1-main": root["digest"]}
    assert any(f"{commit_tag} already holds {original}" in note for note in root["notes"])


def test_a_failing_second_tag_push_is_reported_as_it_is(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="half")
    commit = stack.commit("initial")
    commit_tag = f"2024.1-git-{commit[:12]}"

    def rule(method: str, path: str) -> int | None:  # a definitive error on the second tag only
        return 400 if method == "PUT" and path == f"/v2/half/root/manifests/{commit_tag}" else None

    with fault_proxy(registry, rule) as (proxy, _):
        result = stack.doit("build", "--image", "root", "--registry", proxy)
    assert result.returncode != 0
    root = stack.report()["images"]["root"]
    assert root["status"] == "failed" and "moved before the failure: 2024.1-main" in root["reason"]
    assert list(root["moved"]) == ["2024.1-main"]
    assert registry_digest(registry, "half/root", "2024.1-main") == root["moved"]["2024.1-main"]
    assert registry_digest(registry, "half/root", commit_tag) is None


def test_a_promotion_of_an_inconsistent_set_is_refused(make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="mixed-set")
    stack.commit("initial")
    assert stack.doit("build", "--all").returncode == 0
    old_root = stack.report()["images"]["root"]["digest"]
    (stack.root / "images" / "root" / "Dockerfile").write_text(
        (stack.root / "images" / "root" / "Dockerfile").read_text() + "RUN echo changed > /changed\n")
    stack.commit("root changed")
    rebuilt = stack.doit("build", "--image", "root")  # only the root: its children still sit on the old one
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    new_root = stack.report()["images"]["root"]["digest"]
    result = stack.doit("tag", "--tag", "2024.1-main")
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "no tag was moved" in output
    assert f"built on root@{old_root}" in output and f"root:2024.1-main is {new_root}" in output
    assert registry_digest(registry, "mixed-set/root", "2024.1-stable") is None
    per_platform = stack.doit("tag", "--tag", "2024.1-main-linux-amd64")
    assert per_platform.returncode != 0 and "is a per-platform tag" in per_platform.stdout + per_platform.stderr


def test_merge_takes_this_commits_platform_images_only(make_stack: MakeStack, registry: str, test_base: str,
                                                      engine: docker.DockerClient) -> None:
    base = publish_test_base_index(engine, registry)
    stack = make_stack(registry=registry)
    two_platform_stack(stack, base, "mixed-commit")
    for platform in ("linux/amd64", "linux/arm64"):  # commit A: both platform jobs, then merge
        job = stack.doit("build", "--image", "root", "--platform", platform)
        assert job.returncode == 0, job.stdout + job.stderr
    assert stack.doit("merge", "--image", "root").returncode == 0
    index_a = registry_digest(registry, "mixed-commit/root", "2024.1-main")
    (stack.root / "images" / "root" / "Dockerfile").write_text(
        (stack.root / "images" / "root" / "Dockerfile").read_text() + "RUN echo b > /b\n")
    stack.commit("commit B")
    job = stack.doit("build", "--image", "root", "--platform", "linux/amd64")  # B: amd64 only
    assert job.returncode == 0, job.stdout + job.stderr
    merged = stack.doit("merge", "--image", "root")
    output = merged.stdout + merged.stderr
    assert merged.returncode != 0  # require_all_platforms: arm64 of commit B does not exist
    assert "left out, from another commit: linux/arm64" in output
    assert registry_digest(registry, "mixed-commit/root", "2024.1-main") == index_a  # no mixed index


def test_a_hostile_package_name_renders_as_text_and_the_wiki_still_checks(
        make_stack: MakeStack, registry: str, test_base: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace="wikiattack")
    evil = "evilpkg|<img src=x onerror=alert(1)>[x](nowhere)"
    (stack.root / "images" / "root" / "Dockerfile").write_text(
        f"FROM {test_base}\nRUN echo root > /root.txt && printf '#!/bin/sh\\nprintf \"{evil}\\\\t1.0\\\\n\"\\n' "
        "> /bin/dpkg-query && chmod +x /bin/dpkg-query\n")
    stack.commit("a package with a hostile name")
    stack.repo.git.checkout("-b", "evilbranch|<b>x`y")  # git allows all of these in a branch name
    result = stack.doit("build", "--image", "root")
    assert result.returncode == 0, result.stdout + result.stderr
    record = json.loads(next((stack.root / "artifacts" / "manifests").glob("root-*.json")).read_text())
    assert evil in record["packages"]["apt"]  # the value itself is kept, exactly
    page = next((stack.root / "wiki").glob("root-*.md")).read_text()
    outside = markdown.outside_code(page)  # inside code, `<img` is text: the Dockerfile's RUN line shows it so
    assert "<img" not in outside and "](nowhere)" not in outside
    assert "evilpkg\\|&lt;img src=x onerror=alert\\(1\\)&gt;\\[x\\]\\(nowhere\\)" in page
    assert "| Branch | evilbranch\\|&lt;b&gt;x\\`y |" in page  # the branch cell, escaped
    wiki = stack.doit("wiki")
    assert wiki.returncode == 0, wiki.stdout + wiki.stderr


COMMANDS = {
    "stack-builder": [str(STACK_BUILDER)],
    "doit -f dodo.py": [sys.executable, "-m", "doit", "-f", str(Path(__file__).resolve().parent.parent / "dodo.py")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_image_test_cannot_read_the_credentials_from_its_parent(make_stack: MakeStack, registry: str, test_base: str,
                                                                   tmp_path: Path, command: str) -> None:
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace=f"steal{len(command)}")
    loot = tmp_path / "loot.txt"
    stack.write("images/root/test/test_steal.py", f"""\
        import os

        def test_steal(container):
            found = ["\\0".join(f"{{k}}={{v}}" for k, v in os.environ.items())]
            pid = os.getppid()
            while pid > 1:  # every ancestor whose environment this user may read
                try:
                    found.append(open(f"/proc/{{pid}}/environ", "rb").read().decode(errors="replace"))
                    stat = open(f"/proc/{{pid}}/stat").read()
                except OSError:
                    break
                for fd in os.listdir(f"/proc/{{pid}}/fd"):  # and every file it holds open (the hand-over's)
                    try:
                        target = os.readlink(f"/proc/{{pid}}/fd/{{fd}}")
                        if not target.startswith(("pipe:", "socket:", "anon_inode:", "/dev/")):
                            found.append("FILE " + target + " " + open(f"/proc/{{pid}}/fd/{{fd}}", "rb").read(1 << 20).decode(errors="replace"))
                    except OSError:
                        pass
                pid = int(stat.rsplit(")", 1)[1].split()[1])
            open("{loot}", "w").write("\\x1e".join(found))
        """)
    stack.commit("a test that looks for credentials")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "STACK_"))}
    env.update(ENV, STACK_REGISTRY=registry)
    # Signing is on: the key's password is a secret too, and reaches only cosign.
    signing_canary = "signing-canary-5b1d"
    cosign = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    subprocess.run([cosign, "generate-key-pair"], cwd=tmp_path, env={**os.environ, "COSIGN_PASSWORD": signing_canary},
                   check=True, capture_output=True)
    env.update(COSIGN_PASSWORD=signing_canary, STACK_SIGNING_KEY=str(tmp_path / "cosign.key"))
    result = subprocess.run([*COMMANDS[command], "-d", str(stack.root), "build", "--image", "root"], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    environments = [e for e in loot.read_text().split("\x1e") if not e.startswith("FILE ")]
    assert len(environments) >= 3 and all("PATH=" in e for e in environments[:3])  # its own and its parents'
    assert "STACK_CREDENTIALS_FD=" in environments[1]  # the parent: the builder, started again without them
    assert CANARY not in loot.read_text() and signing_canary not in loot.read_text()
    assert "COSIGN_PASSWORD" not in loot.read_text()
    root = json.loads((stack.root / "artifacts" / "build-report.json").read_text())["images"]["root"]
    assert root["signed"] == [root["digest"]]  # the password came through the pipe, and cosign signed with it
    assert signing_canary not in result.stdout + result.stderr
    # The credentials still worked for the run itself (here, the loopback registry needs none).
    assert RegistryClient(registry).manifest_digest(f"steal{len(command)}/root", "2024.1-main")


@pytest.mark.parametrize(("password", "branch"), [("main", "main"), ("release-Pa55phrase-7c", "x-release-Pa55phrase-7c")])
def test_redaction_never_touches_a_durable_fact(make_stack: MakeStack, registry: str, test_base: str,
                                                password: str, branch: str) -> None:
    # A short password is everywhere (main); a long one inside a branch name: the tags stay whole in every record.
    stack = make_stack(registry=registry)
    small_stack(stack, test_base, namespace=f"facts{len(password)}")
    result = stack.doit("build", "--image", "root", env={"STACK_REGISTRY_USER": "bot",
                                                         "STACK_REGISTRY_PASSWORD": password, "STACK_BRANCH": branch})
    assert result.returncode == 0, result.stdout + result.stderr
    tag = f"2024.1-{branch}"
    assert tag in stack.report()["images"]["root"]["tags"]
    assert tag in (stack.root / "artifacts" / "IMAGES_BUILT").read_text()
    data = "".join(p.read_text() for p in (stack.root / "wiki").rglob("*") if p.is_file())
    assert tag in data and "2024.1-***" not in data and "-***" not in json.dumps(stack.report())
    short = len(password) < 8
    assert ("shorter than 8 characters: it cannot be kept out of logs" in result.stderr) == short
