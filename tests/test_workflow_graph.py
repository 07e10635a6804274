"""main.yml's job graph, run locally through the reusable workflow it calls (stack-build.yml): each job whose
`if:` holds, its own `run:` scripts, in `needs` order, per matrix entry, for a push to main (conditions,
expressions and calls: gha_expressions.py).

Every job starts in a fresh clone of the stack with none of the stack's images in the engine, so
a child's parent can only come from the registry: the fan-out works across machines that share
nothing but the registry. Only `uses:` steps are stood in for: the fresh clone is the checkout,
this interpreter (with the builder) is setup-python, a bare repository is the wiki, and a folder per
run keeps what upload-artifact uploads for download-artifact.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

import docker
import git
import pytest
import yaml

from gha_expressions import Status, condition, locate, render, resolver, simulate, to_string
from stack_builder.registry.client import RegistryClient
from stacks import REPO, STACK_BUILDER, Stack, publish_test_base_index

pytestmark = pytest.mark.integration

INSTALL_STEP = "Install the builder"  # this interpreter has the builder; the shim runs it
WORKFLOWS = REPO / ".github" / "workflows"


def empty_engine_of(engine: docker.DockerClient, prefixes: tuple[str, ...]) -> None:
    """Remove every image of the stack from the engine (children first, as parents have dependents)."""
    for _ in range(5):
        left = [i for i in engine.images.list() if any(t.startswith(prefixes) for t in i.tags)]
        if not left:
            return
        for image in left:
            try:
                engine.images.remove(image.id, force=True)
            except docker.errors.APIError:
                pass  # a parent of another image still here: the next round removes it
    raise AssertionError("the stack's images could not all be removed from the engine")


def write_stack(stack: Stack, base: str) -> None:
    stack.write("spec.yml", """\
images:
  root:
    image_name: ghcr.io/graph/root
    platforms: [linux/amd64, linux/arm64]
    content_tags: [{name: "pkg-{}", command: "dpkg-query | cut -f2"}]
  child:
    image_name: ghcr.io/graph/child
    depend_on: root
    platforms: [linux/amd64, linux/arm64]
    model:
      columns: {score: float}
      command: [/bin/predict, "{input}", "{output}"]
  solo:
    image_name: ghcr.io/graph/solo
    depend_on: root
    info_cmds: [ARCH]
    content_tags: [{name: "arch-{}", command: "uname -m"}]
tag:
  prefix: "2024.1"
all_info_cmds:
  ARCH: {description: Machine, command: uname -m}
""")
    stack.write(".gitignore", "artifacts/\n.doit.json*\nimages.txt\n")
    stack.write("images/root/Dockerfile", root_dockerfile(base, "1.0"))
    for name in ("child", "solo"):
        stack.write(f"images/{name}/Dockerfile", f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {name} > /{name}\n")
    # The child is a model too: the same score on every platform (its platform jobs' outputs must agree).
    stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo child > /child\n"
                                           "COPY predict /bin/predict\n")
    stack.write("images/child/predict", "#!/bin/sh\nawk -F, 'NR == 1 { print \"score\"; next } { print 0.5 }' \"$1\" > \"$2\"\n"
                ).chmod(0o755)
    stack.write("images/child/examples/input.csv", "x\n1\n2\n")
    stack.write("images/child/examples/output.csv", "score\n0.5\n0.5\n")
    stack.write("images/tests_common/test_runs.py", """\
        def test_runs(container):
            assert container.run(["true"])[0] == 0
        """)
    stack.commit("stack")


def root_dockerfile(base: str, version: str) -> str:
    """The root, with a dpkg-query that lists one package at ``version`` (what the manifest pages read)."""
    return (f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\nRUN uname -m > /root-arch && "
            f"printf '#!/bin/sh\\nprintf \"stack-pkg\\\\t{version}\\\\n\"\\n' > /bin/dpkg-query && "
            "chmod +x /bin/dpkg-query\n")


def read_outputs(path: Path) -> dict[str, str]:
    """A step's GITHUB_OUTPUT file: NAME=VALUE lines, or NAME<<DELIMITER ... DELIMITER blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text().splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, _, delimiter = line.partition("<<")
            block = []
            for value in lines:
                if value == delimiter:
                    break
                block.append(value)
            else:
                raise AssertionError(f"{path}: {key}<<{delimiter} is never closed")
            outputs[key] = "\n".join(block)
        elif line:
            key, sep, value = line.partition("=")
            assert sep, f"{path}: {line!r} is neither NAME=VALUE nor NAME<<DELIMITER"
            outputs[key] = value
    return outputs


def test_main_workflow_job_graph_across_empty_machines(tmp_path: Path, registry: str, engine: docker.DockerClient,
                                                        test_base: str) -> None:
    """Two pushes to main, one commit each: the jobs whose if: holds run, level by level, as on GitHub, and
    the wiki job leaves a wiki with both runs' rows, a page per image per commit, and the package change."""
    base = publish_test_base_index(engine, registry)
    origin = Stack(tmp_path / "origin", registry)
    origin.write("README.md", "A stack of images\n")
    before = origin.commit("start")
    write_stack(origin, base)
    wiki_remote = tmp_path / "wiki.git"
    git.Repo.init(wiki_remote, bare=True, initial_branch="master")

    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "stack-builder").symlink_to(STACK_BUILDER)  # what `pip install .` puts on the runner's PATH
    workflow = yaml.safe_load((WORKFLOWS / "main.yml").read_text())
    resolve = resolver(WORKFLOWS)
    # Keyless signing needs Sigstore's Fulcio, which these machines cannot reach: a key pair stands in for it.
    cosign = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    subprocess.run([cosign, "generate-key-pair"], cwd=tmp_path, env={**os.environ, "COSIGN_PASSWORD": "graph-key"},
                   check=True, capture_output=True)

    def push(before: str, run_name: str) -> tuple[list[str], Any]:
        sha = origin.repo.head.commit.hexsha
        event = {"ref": "refs/heads/main", "before": before, "after": sha,
                 "head_commit": {"id": sha, "message": origin.repo.head.commit.message}}
        event_path = tmp_path / f"event-{run_name}.json"
        event_path.write_text(json.dumps(event))
        contexts: dict[str, Any] = {
            "github": {"actor": "tester", "ref": "refs/heads/main", "ref_name": "main", "event_name": "push",
                       "repository": "org/stack", "sha": sha, "event": event},
            "inputs": {}, "secrets": {"GITHUB_TOKEN": "not-a-real-token"}}
        # What GitHub sets for a push; the one difference: the tests' registry instead of ghcr.io.
        github_env = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_EVENT_PATH": str(event_path),
                      "GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_SHA": sha,
                      "GITHUB_ACTOR": "tester", "GITHUB_REPOSITORY": "org/stack", "STACK_REGISTRY": registry}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "STACK_"))}
        ran: list[str] = []
        uploads = tmp_path / run_name / "uploads"  # the run's artifacts, as upload-artifact keeps them
        uploads.mkdir(parents=True)

        def run_job(name: str, here: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
            found = locate(workflow, name, resolve)  # build/plan: the plan job of stack-build.yml, main.yml's build
            job, called = found.definition, found.workflow
            workflow_env = {k: to_string(render(v, here)) for k, v in (called.get("env") or {}).items()}
            include = job.get("strategy", {}).get("matrix", {}).get("include")
            entries = render(include, here) if include is not None else [{}]
            assert isinstance(entries, list) and entries, f"{name}: its if: held, but its matrix is {entries!r}"
            outputs: dict[str, str] = {}
            for index, entry in enumerate(entries):
                workspace = tmp_path / run_name / f"{name.replace('/', '-')}-{index}"
                git.Repo.clone_from(origin.root, workspace)
                empty_engine_of(engine, (f"{registry}/graph/", "ghcr.io/graph/"))
                steps: dict[str, Any] = {}
                for number, step in enumerate(job["steps"]):
                    step_contexts = {**here, "matrix": entry, "steps": steps, "env": workflow_env}
                    if not condition(step.get("if"), step_contexts, Status()):
                        continue
                    if "uses" in step:
                        given = {k: render(v, step_contexts) if k in ("path", "repository") else v
                                 for k, v in (step.get("with") or {}).items()}
                        if str(given.get("repository", "")).endswith(".wiki"):
                            assert given["repository"] == "org/stack.wiki"
                            git.Repo.clone_from(wiki_remote, workspace / given["path"])
                        elif str(step["uses"]).startswith("actions/checkout@"):
                            # The builder's release is fetched only when the caller's checkout is not the builder.
                            assert "repository" not in given, f"{name}: fetches {given['repository']}"
                        elif str(step["uses"]).startswith("actions/upload-artifact@"):  # kept for later jobs
                            found = workspace / render(given["path"], step_contexts)
                            if found.is_dir():
                                shutil.copytree(found, uploads / str(render(given["name"], {
                                    **step_contexts, "strategy": {"job-index": index}})))
                        elif str(step["uses"]).startswith("actions/download-artifact@"):
                            if "name" in given:  # one artifact, straight into the path
                                shutil.copytree(uploads / given["name"], workspace / given["path"],
                                                dirs_exist_ok=True)
                            for upload in sorted(uploads.iterdir()) if "pattern" in given else []:
                                if fnmatch.fnmatch(upload.name, given["pattern"]):
                                    shutil.copytree(upload, workspace / given["path"] / upload.name)
                        continue
                    if step.get("name") == INSTALL_STEP:
                        continue  # this interpreter has the builder; the shim runs it
                    github_output = tmp_path / run_name / f"{name.replace('/', '-')}-{index}-{number}.out"
                    github_output.write_text("")
                    env = {**base_env, **workflow_env, **{k: to_string(render(v, step_contexts)) for k, v in {
                        **job.get("env", {}), **step.get("env", {})}.items()}}
                    env.update(github_env, GITHUB_OUTPUT=str(github_output), PATH=f"{shim}:{env['PATH']}")
                    if env.pop("STACK_SIGNING", "") == "keyless":
                        env.pop("STACK_SIGNING_IDENTITY", None)
                        env.update(STACK_SIGNING_KEY=str(tmp_path / "cosign.key"), COSIGN_PASSWORD="graph-key")
                    cwd = workspace / render(step.get("working-directory", (job.get("defaults") or {}).get(
                        "run", {}).get("working-directory", ".")), step_contexts)
                    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=cwd, env=env,
                                            capture_output=True, text=True, timeout=900, check=False)
                    assert result.returncode == 0, f"{name}[{entry}] step {step.get('name')}:\n{result.stdout}\n" \
                                                   f"{result.stderr[-3000:]}"
                    if "id" in step:
                        steps[step["id"]] = {"outputs": read_outputs(github_output), "outcome": "success",
                                             "conclusion": "success"}
                # The job's outputs are what its outputs: map says, from its steps' outputs.
                outputs.update({k: to_string(render(v, {**here, "matrix": entry, "steps": steps}))
                                for k, v in (job.get("outputs") or {}).items()})
                ran.append(f"{name}:{entry.get('image', '')}:{entry.get('platform', '')}".rstrip(":"))
            return "success", outputs

        return ran, simulate(workflow, contexts, run_job, resolve=resolve)

    first_sha = origin.repo.head.commit.hexsha
    ran, run = push(before, "run1")
    # An image's arm64 job waits for its amd64 one (and for its parent's arm64 image).
    assert ran == ["build/plan", "build/level0:root:linux/amd64", "build/level1:root:linux/arm64",
                   "build/level1:child:linux/amd64", "build/level1:solo:linux/amd64", "build/level2:child:linux/arm64",
                   "build/merge", "build/wiki"], ran
    assert [n for n, r in run.calls["build"].results.items() if r == "skipped"] == ["level3", "level4"]
    assert run.results == {"build": "success"} and run.outputs["build"]["tag"] == "2024.1-main"
    client = RegistryClient(registry)
    for name in ("root", "child"):
        index = client.get_manifest(f"graph/{name}", "2024.1-main")
        assert index is not None
        platforms = [m["platform"]["architecture"] for m in json.loads(index.body).get("manifests", [])]
        assert platforms == ["amd64", "arm64"], name
        if name == "root":  # its content tag, worked out by the platform jobs, is on the index merge made
            assert client.manifest_digest("graph/root", "2024.1-main-pkg-1.0") == index.digest
        # The level jobs signed their platform images, the merge job the index.
        for digest in [index.digest, *(m["digest"] for m in json.loads(index.body)["manifests"])]:
            verified = subprocess.run([cosign, "verify", "--key", str(tmp_path / "cosign.pub"),
                                       "--insecure-ignore-tlog=true", "--allow-insecure-registry",
                                       f"{registry}/graph/{name}@{digest}"], capture_output=True, text=True)
            assert verified.returncode == 0, f"{name}@{digest}: {verified.stderr}"
    assert client.manifest_digest("graph/solo", "2024.1-main") is not None
    # A one-platform image's content tag is put by its own job (there is no index for merge to tag).
    assert client.manifest_digest("graph/solo", "2024.1-main-arch-x86_64") == \
        client.manifest_digest("graph/solo", "2024.1-main")

    # A second push: the root's package changes (and with it its children), and solo's own Dockerfile.
    (origin.root / "images" / "root" / "Dockerfile").write_text(root_dockerfile(base, "2.0"))
    origin.write("images/solo/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo solo two > /solo\n")
    second_sha = origin.commit("root: stack-pkg 2.0; solo changed")
    ran, _ = push(first_sha, "run2")
    assert "build/wiki" in ran and "build/merge" in ran, ran
    assert client.manifest_digest("graph/root", "2024.1-main-pkg-2.0") == client.manifest_digest("graph/root",
                                                                                                "2024.1-main")

    # The wiki both runs published: a row per run on Home, a page per image per commit, the package change.
    published = git.Repo.clone_from(wiki_remote, tmp_path / "wiki-check")
    folder = Path(published.working_tree_dir or "")
    pages = {p.name for p in folder.glob("*.md")}
    for name in ("root", "child", "solo"):
        assert {f"{name}-2024.1-git-{first_sha[:12]}.md", f"{name}-2024.1-git-{second_sha[:12]}.md"} <= pages, pages
    home = (folder / "Home.md").read_text()
    rows = [line for line in home.split("## Promotions")[0].splitlines() if line.startswith("| 20") and "| main |" in line]
    assert len(rows) == 2 and second_sha[:12] in rows[0] and first_sha[:12] in rows[1], rows
    assert all(f"(root-2024.1-git-{sha[:12]})" in home for sha in (first_sha, second_sha))
    second_root = (folder / f"root-2024.1-git-{second_sha[:12]}.md").read_text()
    assert "| apt | stack-pkg | 1.0 | 2.0 |" in second_root, second_root[:2000]
    assert "| Branch | main |" in second_root
    assert "Manifests for" in published.head.commit.message
    # The model catalog, from the run's report the merge job kept: the child's digest and agreeing architectures.
    models = (folder / "Models.md").read_text()
    assert "Architectures agreeing: linux/amd64, linux/arm64." in models, models
    assert f"| 2024.1-main | ` {client.manifest_digest('graph/child', '2024.1-main')} ` | 0 |" in models, models


# Fulcio, stood in for by key pairs: one per certificate, as Fulcio would issue it to a job. Its identity is the
# file of the job's workflow at its ref, the called one for a job of a reusable workflow (the token's
# job_workflow_ref, which no runner variable holds: the tests give it as FAKE_JOB_WORKFLOW_REF; else
# GITHUB_WORKFLOW_REF, the run's own workflow); its GitHub Workflow Repository, Ref and SHA extensions are the
# calling run's (GITHUB_REPOSITORY, GITHUB_REF, GITHUB_SHA). Keyless signing gets the job's certificate's key;
# keyless verification takes the arguments the tool gave cosign, and tries the keys of exactly the certificates
# those arguments admit (the identity searched as cosign does, the extensions compared when
# --certificate-github-workflow-sha, -repository or -ref is given). Everything else is the real cosign on the
# real registry.
FULCIO = '''\
import hashlib, json, os, re, subprocess, sys
from pathlib import Path
real, certificates = os.environ["REAL_COSIGN"], Path(os.environ["FAKE_FULCIO"])
args = sys.argv[1:]
with open(certificates / "calls.jsonl", "a") as log:
    log.write(json.dumps(args) + "\\n")
env = {**os.environ, "COSIGN_PASSWORD": ""}

def take(flag):
    if flag in args:
        at = args.index(flag)
        value = args[at + 1]
        del args[at:at + 2]
        return value
    return None

if args[0] in ("sign", "attest") and "--key" not in args:
    job_workflow = os.environ.get("FAKE_JOB_WORKFLOW_REF") or os.environ["GITHUB_WORKFLOW_REF"]
    certificate = {"identity": os.environ["GITHUB_SERVER_URL"] + "/" + job_workflow, "commit": os.environ["GITHUB_SHA"],
                   "repository": os.environ["GITHUB_REPOSITORY"], "ref": os.environ["GITHUB_REF"]}
    folder = certificates / hashlib.sha256(json.dumps(certificate, sort_keys=True).encode()).hexdigest()[:16]
    if not folder.is_dir():
        folder.mkdir(parents=True)
        subprocess.run([real, "generate-key-pair"], cwd=folder, env=env, check=True, capture_output=True)
        (folder / "certificate.json").write_text(json.dumps(certificate))
    os.execve(real, [real, args[0], "--key", str(folder / "cosign.key"), "--tlog-upload=false", *args[1:]], env)
if args[0] in ("verify", "verify-attestation") and "--key" not in args:
    regexp, issuer = take("--certificate-identity-regexp"), take("--certificate-oidc-issuer")
    extensions = {"commit": take("--certificate-github-workflow-sha"),
                  "repository": take("--certificate-github-workflow-repository"),
                  "ref": take("--certificate-github-workflow-ref")}
    assert regexp and issuer == "https://token.actions.githubusercontent.com", (regexp, issuer)
    for folder in sorted(p for p in certificates.iterdir() if p.is_dir()):
        certificate = json.loads((folder / "certificate.json").read_text())
        if re.search(regexp, certificate["identity"]) and all(
                wanted in (None, certificate[name]) for name, wanted in extensions.items()):
            done = subprocess.run([real, args[0], "--key", str(folder / "cosign.pub"), "--insecure-ignore-tlog=true",
                                   *args[1:]], env=env, capture_output=True, text=True)
            if done.returncode == 0:
                print(done.stdout, end="")
                sys.exit(0)
            print(done.stdout, done.stderr)
    print("Error: none of the expected identities matched what was in the certificate")
    sys.exit(1)
os.execve(real, [real, *args], env)
'''


def test_a_branch_jobs_statement_serves_its_own_commit_only(tmp_path: Path, registry: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """main.yml's keyless signing, as its jobs' environment sets it up, with Fulcio stood in for: a statement
    a branch job signed is reused by main for the same commit (a fast-forward merge), never for another commit,
    nor when it names another commit than its certificate's; a statement main signed serves later commits; a
    statement another workflow signed serves none."""
    from stack_builder.registry import statements
    from stack_builder.registry.signing import Signing
    from stack_builder.registry.statements import BuildStatement
    from stack_builder.settings import Settings
    from stacks import push_two_platform_index

    bin_folder, certificates = tmp_path / "bin", tmp_path / "fulcio"
    bin_folder.mkdir()
    certificates.mkdir()
    shim = bin_folder / "cosign"
    shim.write_text(f"#!{sys.executable}\n{FULCIO}")
    shim.chmod(0o755)
    real = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    monkeypatch.setenv("PATH", f"{bin_folder}:{os.environ['PATH']}")
    workflow = yaml.safe_load((WORKFLOWS / "stack-build.yml").read_text())
    step = next(s for s in workflow["jobs"]["level0"]["steps"] if "STACK_SIGNING" in (s.get("env") or {}))

    def job(ref: str, commit: str, workflow_file: str = "stack-build.yml", *, repository: str = "org/stack",
            released: bool = False) -> Signing:
        """The Signing a job of ``workflow_file`` (called by main.yml) on ``ref`` at ``commit`` makes of
        stack-build.yml's step environment; ``released``: called by ``repository`` from the builder's repository
        at the tag of the version stack-build.yml pins, as a stack calls it."""
        contexts = {"github": {"repository": repository, "actor": "a", "ref": ref, "sha": commit},
                    "inputs": {"builder_from_checkout": not released, "directory": "."}, "env": workflow["env"],
                    "secrets": {"GITHUB_TOKEN": "not-a-real-token"}, "matrix": {"image": "root", "platform": "linux/amd64"}}
        env = {k: to_string(render(str(v), contexts)) for k, v in step["env"].items()}
        # The called workflow: this repository's (org/stack: whoever calls it), or the builder's release.
        called = workflow["env"]["STACK_BUILDER_WORKFLOW"] if released else \
            f"org/stack/.github/workflows/{workflow_file}@{ref}"
        env.update(PATH=os.environ["PATH"], HOME=os.environ.get("HOME", "/tmp"), REAL_COSIGN=real,
                   FAKE_FULCIO=str(certificates), GITHUB_SERVER_URL="https://github.com", GITHUB_SHA=commit,
                   GITHUB_REPOSITORY=repository, GITHUB_REF=ref, FAKE_JOB_WORKFLOW_REF=called,
                   GITHUB_WORKFLOW_REF=f"{repository}/.github/workflows/main.yml@{ref}")  # the caller's
        signing = Signing.from_settings(Settings.from_env(env))
        assert signing is not None and signing.keyless
        return signing

    _, _ = push_two_platform_index(registry, "graph/trust", "t")
    client = RegistryClient(registry)
    amd64, arm64 = (str(client.manifest_digest("graph/trust", f"t-{arch}")) for arch in ("amd64", "arm64"))
    first, second, third, fourth = ("1" * 40, "2" * 40, "3" * 40, "4" * 40)

    def ref(digest: str) -> str:
        return f"{registry}/graph/trust@{digest}"

    def statement(digest: str, commit: str) -> BuildStatement:
        return BuildStatement(digest, "root", commit, "key-1", "linux/amd64")

    # A branch job at the first commit builds and tests amd64; its statement says so.
    statements.attach(job("refs/heads/feature", first), ref(amd64), statement(amd64, first), None)
    on_main = job("refs/heads/main", second)
    assert statements.vouching(statements.verified(on_main, ref(amd64), None, commit=second), input_key="key-1") \
        is None, "a branch job's statement vouched for another commit"
    assert statements.verified(on_main, ref(amd64), None) == []  # nor for none: only main's serve any commit
    fast_forward = job("refs/heads/main", first)
    found = statements.vouching(statements.verified(fast_forward, ref(amd64), None, commit=first), input_key="key-1")
    assert found is not None and found.commit == first  # the fast-forward merge reuses its branch's build
    calls = [json.loads(line) for line in (certificates / "calls.jsonl").read_text().splitlines()]
    bound = [c for c in calls if "--certificate-github-workflow-sha" in c]
    assert bound and {c[c.index("--certificate-github-workflow-sha") + 1] for c in bound} == {first, second}
    assert all(c[c.index("--certificate-identity-regexp") + 1] == on_main.any_ref_identity for c in bound)
    assert all(c[c.index("--certificate-identity-regexp") + 1] == on_main.identity
               for c in calls if c[0] == "verify-attestation" and c not in bound)

    # A branch job at the third commit says its statement is of the second: its certificate says otherwise.
    statements.attach(job("refs/heads/feature", third), ref(arm64), statement(arm64, second), None)
    assert statements.verified(job("refs/heads/main", second), ref(arm64), None, commit=second) == []
    assert statements.verified(job("refs/heads/main", third), ref(arm64), None, commit=third) == []
    # Another workflow of the same repository, on main: not main.yml, so no statement of it serves.
    statements.attach(job("refs/heads/main", third, "test.yml"), ref(arm64), statement(arm64, third), None)
    assert statements.verified(job("refs/heads/main", third), ref(arm64), None, commit=third) == []

    # Another repository calling this repository's stack-build.yml (as any public repository can) signs with the
    # very identity main.yml's jobs have on main: its statements serve no commit here (the caller is bound).
    statements.attach(job("refs/heads/main", third, repository="evil/stack"), ref(arm64), statement(arm64, third),
                      None)
    assert statements.verified(job("refs/heads/main", third), ref(arm64), None) == []
    assert statements.verified(job("refs/heads/main", third), ref(arm64), None, commit=third) == []
    unbound = dataclasses.replace(job("refs/heads/main", third), caller_repository="", caller_ref="")
    assert statements.verified(unbound, ref(arm64), None) != []  # what the binding refuses: the same identity

    # Stacks calling the builder's released stack-build.yml: each believes its own main's statements only.
    stack = job("refs/heads/main", third, repository="ucsd/stack", released=True)
    statements.attach(stack, ref(amd64), statement(amd64, third), None)
    assert statements.verified(job("refs/heads/main", fourth, repository="ucsd/stack", released=True), ref(amd64),
                               None) != []
    assert statements.verified(job("refs/heads/main", fourth, repository="other/stack", released=True), ref(amd64),
                               None) == []
    assert statements.verified(job("refs/heads/main", fourth), ref(amd64), None, commit=third) == []  # not ours

    # stack-build.yml on main at the third commit: its statement serves the fourth commit too (same input key).
    statements.attach(job("refs/heads/main", third), ref(arm64), statement(arm64, third), None)
    later = statements.vouching(statements.verified(job("refs/heads/main", fourth), ref(arm64), None, commit=fourth),
                                input_key="key-1")
    assert later is not None and later.commit == third

    # Promotion of what main reused by a fast-forward merge: the branch job signed it and stated it at the
    # first commit, which is on main; promotion believes that branch's signature and statement only when
    # the promotion's checkout has that commit (and never for an image built from another commit).
    from stack_builder.release import promote

    def ref_in(repository: str, digest: str) -> str:
        return f"{registry}/{repository}@{digest}"

    labelled = _labelled_image(client, "graph/ff", first)
    feature = job("refs/heads/feature", first)
    feature.sign(ref_in("graph/ff", labelled), None)
    statements.attach(feature, ref_in("graph/ff", labelled), statement(labelled, first), None)
    manifest = client.get_manifest("graph/ff", labelled)
    assert manifest is not None

    def move() -> "promote.Move":
        found = promote.Move(image="root", repository="graph/ff", source_tag="2024.1-main", target_tag="2024.1-stable")
        found.source_digest, found.media_type, found.body = labelled, manifest.media_type, manifest.body
        return found

    on_main_now = job("refs/heads/main", fourth)
    on_history, elsewhere = move(), move()
    promote.check_signatures(on_main_now, client, registry, [on_history], on_trusted_ref=lambda c: c == first)
    assert on_history.problems == [] and on_history.gates["signature"] == "verified"
    promote.check_signatures(on_main_now, client, registry, [elsewhere], on_trusted_ref=lambda c: False)
    assert elsewhere.gates["signature"] == "failed" and elsewhere.problems


def _labelled_image(client: RegistryClient, repository: str, commit: str) -> str:
    """A one-layer image whose revision label is ``commit``, pushed by digest; its digest."""
    layer = gzip.compress(b"", mtime=0)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
        "Labels": {"org.opencontainers.image.revision": commit}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(b"").hexdigest()]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": client.upload_blob(repository, config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": client.upload_blob(repository, layer), "size": len(layer)}]}).encode()
    return client.put_manifest(repository, "labelled", manifest, "application/vnd.oci.image.manifest.v1+json")
