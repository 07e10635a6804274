"""Helpers shared by the tests and the benchmarks: a real registry process, a tiny base image,
and stacks in temporary git repositories built with this repo's dodo.py.
"""
from __future__ import annotations

import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Protocol

import docker
import git
import pytest
import requests

from stack_builder.registry.client import RegistryClient

REPO = Path(__file__).resolve().parent.parent
DODO = REPO / "dodo.py"
STACK_BUILDER = Path(sys.executable).parent / "stack-builder"  # the console command of `pip install .`
TEST_BASE = "stack-test/busybox:2"
BUSYBOX = Path("/bin/busybox")


# Ports handed out by free_port(), each held by a bound socket until release_port().
_RESERVED: dict[int, socket.socket] = {}


def free_port() -> int:
    """A loopback port reserved for this process until ``release_port(port)`` (or the process ends).

    The port stays bound by a socket of ours that never listens, with SO_REUSEADDR set: the kernel
    gives it to no other socket meanwhile and connections to it are refused, yet a server that binds
    with SO_REUSEADDR can still listen on it (Go programs such as the registry do, as does Docker's
    port publishing). So a port meant to stay closed stays closed, and one a server is started on
    cannot be taken by someone else between our choosing it and the server binding it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    _RESERVED[port] = sock
    return port


def release_port(port: int) -> None:
    sock = _RESERVED.pop(port, None)
    if sock is not None:
        sock.close()


REGISTRY_START_S = 30.0
REGISTRY_ATTEMPTS = 3


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_until_answering(proc: subprocess.Popen[bytes], url: str, verify: str | bool, timeout: float) -> str | None:
    """None once the registry answers ``url``; else why it never did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"it exited with code {proc.returncode}"
        try:
            response = requests.get(url, timeout=1, verify=verify)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            time.sleep(0.1)
            continue
        if proc.poll() is not None:
            return f"it exited with code {proc.returncode} (something else answered on its port)"
        if "Docker-Distribution-Api-Version" not in response.headers:
            return f"{url} answered HTTP {response.status_code} without a Docker-Distribution-Api-Version header"
        return None
    return f"it did not answer {url} within {timeout:.0f} s"


@contextmanager
def running_registry(binary: str, folder: Path, *, tls: tuple[Path, Path] | None = None,
                     auth: str = "") -> Iterator[str]:
    """A real distribution registry on a free loopback port, with its own storage.

    ``tls`` is (certificate, key) to serve HTTPS; ``auth`` is the YAML of an ``auth:`` section.
    The registry's output goes to ``registry-<port>.log`` in ``folder``. A registry that cannot bind
    its port is started again on another one; one that exits or never answers for any other reason
    raises RuntimeError with its log, rather than handing out an address where nothing listens.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tls_line = f"\n  tls: {{certificate: {tls[0]}, key: {tls[1]}}}" if tls else ""
    scheme, verify = ("https", str(tls[0])) if tls else ("http", True)
    config = folder / "config.yml"
    failures: list[str] = []
    for _ in range(REGISTRY_ATTEMPTS):
        port = free_port()
        config.write_text(textwrap.dedent(f"""\
            version: 0.1
            log: {{level: error}}
            storage:
              filesystem: {{rootdirectory: {folder / 'data'}}}
              delete: {{enabled: true}}
            """) + f"http:\n  addr: 127.0.0.1:{port}{tls_line}\n" + auth)
        log = folder / f"registry-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT)
        host = f"127.0.0.1:{port}"
        problem = _wait_until_answering(proc, f"{scheme}://{host}/v2/", verify, REGISTRY_START_S)
        if problem is None:
            break
        _stop(proc)
        release_port(port)
        output = log.read_text(errors="replace").strip()
        failures.append(f"on port {port}: {problem}; its output ({log}):\n{output[-3000:] or '(none)'}")
        if "address already in use" not in output:
            break  # another port would not help
    if problem is not None:
        raise RuntimeError(f"the registry ({binary} serve {config}) did not start " + "\n".join(failures))
    try:
        yield host
    finally:
        _stop(proc)
        release_port(port)


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """Held while making something every process on this machine shares (the engine's test base images):
    pytest-xdist's workers, or a benchmark beside the tests, then make it once, one after the other."""
    with (Path(tempfile.gettempdir()) / f"stack-test-{name}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


ARM64_DEBS = Path("/var/cache/stack-builder")
APPLETS = ("sh", "echo", "cat", "sleep", "uname", "ls", "id", "test", "false", "true", "mkdir", "env",
           "awk", "sort", "head", "tail", "tr", "printf", "chmod")


def ensure_test_base_arm64(engine: docker.DockerClient) -> str:
    """The arm64 twin of the test base, as <base>-linux-arm64: Debian's arm64 busybox, loaded with an
    image config that says arm64 (docker import cannot record another architecture)."""

    name = f"{TEST_BASE}-linux-arm64"
    with machine_lock("base-arm64"):
        try:
            engine.images.get(name)
        except docker.errors.ImageNotFound:
            _load_test_base_arm64(engine, name)
    return name


def _load_test_base_arm64(engine: docker.DockerClient, name: str) -> None:
    debs = sorted(ARM64_DEBS.glob("busybox-static_*_arm64.deb"))
    if not debs:
        raise RuntimeError(f"no arm64 busybox in {ARM64_DEBS}: `bash setup.sh env` downloads it")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), tmp], check=True)
        busybox = (Path(tmp) / "bin" / "busybox").read_bytes()
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        applets(tar)
    raw = layer.getvalue()
    config = json.dumps({"architecture": "arm64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
                        ).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for member, data in (("layer.tar", raw), ("config.json", config), ("manifest.json", json.dumps(
                [{"Config": "config.json", "RepoTags": [name], "Layers": ["layer.tar"]}]).encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    engine.images.load(archive.getvalue())


def applets(tar: tarfile.TarFile) -> None:
    """busybox's applets as links to it, and a /tmp: what a busybox root file system needs."""
    for applet in APPLETS:
        link = tarfile.TarInfo(f"bin/{applet}")
        link.type, link.linkname = tarfile.SYMTYPE, "busybox"
        tar.addfile(link)
    tmp = tarfile.TarInfo("tmp")
    tmp.type, tmp.mode = tarfile.DIRTYPE, 0o1777
    tar.addfile(tmp)


def ensure_test_base(engine: docker.DockerClient) -> str:
    """A 2 MB busybox image made locally (no registry can be pulled from here)."""
    with machine_lock("base"):
        try:
            engine.images.get(TEST_BASE)
        except docker.errors.ImageNotFound:
            _import_test_base(engine)
    return TEST_BASE


def _import_test_base(engine: docker.DockerClient) -> None:
    if not BUSYBOX.is_file():
        raise RuntimeError("/bin/busybox is missing: apt-get install busybox-static (setup.sh does)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        applets(tar)
    repository, _, tag = TEST_BASE.rpartition(":")
    engine.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag)


DEBIAN = "debian:bookworm-slim"


def debian_base(engine: docker.DockerClient) -> str:
    """The name Dockerfiles use for the set-up's Debian base (``debian:bookworm-slim``): fails the test when
    the engine holds neither it nor its local stand-in (``localhost/host-ca/...``, seeded with the host's CA)."""
    for name in (DEBIAN, "localhost/host-ca/" + DEBIAN):
        try:
            engine.images.get(name)
            return DEBIAN
        except docker.errors.ImageNotFound:
            continue
    pytest.fail(f"{DEBIAN} is missing: `bash setup.sh env` seeds it", pytrace=False)


def registry_digest(host: str, repository: str, tag: str) -> str | None:
    response = requests.head(f"http://{host}/v2/{repository}/manifests/{tag}", timeout=10, headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


class Stack:
    """A stack folder in its own git repository, built with this repo's dodo.py."""

    def __init__(self, root: Path, registry: str | None) -> None:
        self.root = root
        self.registry = registry
        self.repo = git.Repo.init(root, initial_branch="main")
        with self.repo.config_writer() as config:
            config.set_value("user", "name", "Test")
            config.set_value("user", "email", "test@example.invalid")

    def write(self, path: str, text: str) -> Path:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        return target

    def commit(self, message: str = "change") -> str:
        self.repo.git.add(A=True)
        self.repo.index.commit(message)
        return self.repo.head.commit.hexsha

    def doit(self, *args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        run_env = dict(os.environ)
        run_env.pop("GITHUB_ACTIONS", None)
        if self.registry:
            run_env["STACK_REGISTRY"] = self.registry
        run_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "doit", "-f", str(DODO), "-d", str(self.root), *args],
                              capture_output=True, text=True, env=run_env, timeout=timeout, check=False)

    def report(self) -> dict[str, Any]:
        return dict(json.loads((self.root / "artifacts" / "build-report.json").read_text()))

    def lines(self, name: str) -> list[str]:
        return (self.root / "artifacts" / name).read_text().split()


class MakeStack(Protocol):
    """The ``make_stack`` fixture: a new stack folder (in the test's temporary folder) in its own git repository."""

    def __call__(self, name: str = "stack", registry: str | None = None) -> Stack: ...


def small_stack(stack: Stack, base: str, *, namespace: str) -> None:
    """root -> (left -> leaf, right): two branches, each image with a real test."""
    stack.write("spec.yml", f"""\
        images:
          root:
            image_name: ghcr.io/{namespace}/root
            info_cmds: [OS]
          left:
            image_name: ghcr.io/{namespace}/left
            depend_on: root
          leaf:
            image_name: ghcr.io/{namespace}/leaf
            depend_on: left
          right:
            image_name: ghcr.io/{namespace}/right
            depend_on: root
        tag:
          prefix: "2024.1"
        all_info_cmds:
          OS:
            description: Kernel
            command: uname -a
        """)
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    stack.write("images/root/Dockerfile", f"FROM {base}\nRUN echo root > /root.txt\n")
    for name in ("left", "leaf", "right"):
        stack.write(f"images/{name}/Dockerfile",
                    f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nRUN echo {name} > /{name}.txt\n")
    stack.write("images/tests_common/test_shell.py", """\
        def test_shell_runs(container):
            code, output = container.run(["sh", "-c", "echo hello"])
            assert code == 0 and output.strip() == "hello"
        """)
    for name, inherited in (("root", ["root"]), ("left", ["root", "left"]), ("leaf", ["root", "left", "leaf"]),
                            ("right", ["root", "right"])):
        checks = " && ".join(f"test -f /{n}.txt" for n in inherited)
        stack.write(f"images/{name}/test/test_{name}.py", f"""\
            def test_{name}_has_its_files(container):
                code, output = container.run(["sh", "-c", "{checks} && cat /{name}.txt"])
                assert code == 0, output
                assert output.strip() == "{name}"
            """)
    stack.commit("initial stack")


def push_two_platform_index(registry: str, repository: str, tag: str) -> tuple[str, list[str]]:
    """Push a tiny OCI index with linux/amd64 and linux/arm64 images; return (index digest, its platforms)."""


    client = RegistryClient(registry)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    layer = gzip.compress(raw, mtime=0)
    layer_digest = client.upload_blob(repository, layer)
    entries: list[dict[str, Any]] = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}
                            ).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": client.upload_blob(repository, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                        "size": len(layer)}]}).encode()
        digest = client.put_manifest(repository, f"{tag}-{arch}", manifest, "application/vnd.oci.image.manifest.v1+json")
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest,
                        "size": len(manifest), "platform": {"architecture": arch, "os": "linux"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    digest = client.put_manifest(repository, tag, index, "application/vnd.oci.image.index.v1+json")
    return digest, [f"linux/{e['platform']['architecture']}" for e in entries]


def publish_test_base_index(engine: docker.DockerClient, registry: str) -> str:
    """The test base for amd64 and arm64 as one two-platform index in ``registry``; return its reference.

    BuildKit resolves a base per platform from a registry (a local-only image only for the engine's
    own platform), as a multi-platform stack's bases are in production.
    """
    from stack_builder.registry import multiarch

    arm64 = ensure_test_base_arm64(engine)
    amd64 = ensure_test_base(engine)
    repository = f"{registry}/stack-test/busybox"
    entries = []
    for platform, local in (("linux/amd64", amd64), ("linux/arm64", arm64)):
        tag = multiarch.platform_tag("2", platform)
        engine.images.get(local).tag(repository, tag)
        digest = None
        for chunk in engine.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise RuntimeError(f"push of the test base failed: {chunk['error']}")
            digest = (chunk.get("aux") or {}).get("Digest") or digest
        if digest is None:
            raise RuntimeError(f"push of {repository}:{tag} reported no digest")
        entries.append(multiarch.Entry(platform, str(digest), "", 0))
    multiarch.publish_index(RegistryClient(registry), "stack-test/busybox", ["2"], entries)
    return f"{repository}:2"


ARCH_TEST = """\
import os

MACHINE = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def test_runs_on_its_platform(container):
    code, output = container.run(["uname", "-m"])
    assert code == 0 and output.strip() == MACHINE[os.environ["STACK_PLATFORM"]]
"""


def two_platform_stack(stack: Stack, base: str, namespace: str, *, extra: str = "", require_all: bool = True,
                       literal_from: bool = False) -> None:
    """root -> child, both for amd64 and arm64, tested on each platform. The root builds FROM ``base``
    through ``ARG BASE_IMAGE=<base>``, or with ``literal_from`` as a plain ``FROM <base>``."""
    flag = "" if require_all else "\n    require_all_platforms: false"
    stack.write("spec.yml", f"""\
images:
  root:
    image_name: ghcr.io/{namespace}/root
    platforms: [linux/amd64, linux/arm64]{flag}
    build_args: {{NONCE: "{uuid.uuid4().hex}"}}  # a fresh value: the RUN steps really run, never cached
  child:
    image_name: ghcr.io/{namespace}/child
    depend_on: root
    platforms: [linux/amd64, linux/arm64]
tag:
  prefix: "2024.1"
""")
    stack.write(".gitignore", "artifacts/\n.doit.json*\n")
    source = f"FROM {base}" if literal_from else f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}"
    stack.write("images/root/Dockerfile", f"{source}\nARG NONCE\nRUN echo $NONCE && uname -m && uname -m > /root-arch\n"
                                          f"{extra}")
    stack.write("images/child/Dockerfile", "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN uname -m > /child-arch\n")
    stack.write("images/tests_common/test_arch.py", ARCH_TEST)
    stack.commit("two platforms")


def cosign() -> str:
    """The cosign that `setup.sh env` installs (on PATH, or in the virtual environment)."""
    found = shutil.which("cosign") or str(Path(sys.prefix) / "bin" / "cosign")
    if not Path(found).is_file():
        pytest.fail("cosign is not installed; run `bash setup.sh env` first", pytrace=False)
    return found


def cosign_key_pair(folder: Path, password: str) -> tuple[Path, Path]:
    """A new cosign key pair in ``folder`` under ``password``: (private key, public key)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([cosign(), "generate-key-pair"], cwd=folder, env={**os.environ, "COSIGN_PASSWORD": password},
                   check=True, capture_output=True)
    return folder / "cosign.key", folder / "cosign.pub"
