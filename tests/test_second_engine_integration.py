"""The second Docker engine helper: TLS on TCP, its own state, and a clean stop beside the first engine."""
from __future__ import annotations

import os
import shutil
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
import requests
from second_engine import SecondEngine, make_tls, running_engine

pytestmark = pytest.mark.integration

CONNECTION_ERRORS = (requests.exceptions.RequestException, ssl.SSLError, ConnectionError,
                     docker.errors.DockerException)


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecondEngine]:
    with running_engine(tmp_path_factory.mktemp("second-engine")) as engine:
        yield engine


def _bridges() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def test_make_tls_writes_the_cert_path_layout(tmp_path: Path) -> None:
    files = make_tls(tmp_path)
    for folder in (files.server, files.client, files.wrong):
        for name in ("ca.pem", "cert.pem", "key.pem"):
            assert (folder / name).is_file()
        assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
    assert (files.wrong / "ca.pem").read_bytes() == (files.client / "ca.pem").read_bytes()
    assert (files.wrong / "cert.pem").read_bytes() != (files.client / "cert.pem").read_bytes()


def test_answers_over_tls_with_the_good_client_cert(second: SecondEngine, engine: docker.DockerClient) -> None:
    client = second.client()
    try:
        assert client.ping() is True
        assert client.info()["ID"] != engine.info()["ID"]
    finally:
        client.close()
    from_env = docker.from_env(environment=second.env(), version="1.41")
    from_env.api.trust_env = False  # REQUESTS_CA_BUNDLE would replace the engine's CA otherwise
    try:
        assert from_env.ping() is True
    finally:
        from_env.close()


def test_the_docker_cli_takes_the_env(second: SecondEngine) -> None:
    cli = shutil.which("docker")
    if cli is None:
        pytest.skip("no docker CLI on the PATH")
    done = subprocess.run([cli, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                          env={**os.environ, **second.env()}, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    refused = subprocess.run([cli, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                             text=True, env={**os.environ, **second.env(second.tls.wrong)}, timeout=60,
                             check=False)
    assert refused.returncode != 0


def test_the_unix_socket_answers_too(second: SecondEngine) -> None:
    client = docker.DockerClient(base_url=second.unix_url)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_a_client_cert_from_another_ca_is_refused(second: SecondEngine) -> None:
    client = second.client(second.tls.wrong, version="1.41")  # no version lookup: the ping is the first call
    pinged = False
    try:
        with pytest.raises(CONNECTION_ERRORS) as info:
            pinged = client.ping()
    finally:
        client.close()
    assert not pinged
    assert any(isinstance(exc, (ssl.SSLError, ConnectionResetError, requests.exceptions.SSLError))
               or "certificate" in str(exc).lower() for exc in _chain(info.value)), repr(info.value)
    # And a client that asks for the API version first fails at once.
    with pytest.raises(CONNECTION_ERRORS):
        second.client(second.tls.wrong)


def test_the_image_store_is_its_own(second: SecondEngine, engine: docker.DockerClient, test_base: str) -> None:
    first_image = engine.images.get(test_base).id
    client = second.client()
    try:
        assert first_image not in {image.id for image in client.images.list(all=True)}
    finally:
        client.close()


def test_pulls_from_the_loopback_registry(second: SecondEngine, engine: docker.DockerClient, test_base: str,
                                          registry: str) -> None:
    repository, tag = f"{registry}/second-engine/busybox", f"t{os.getpid()}"
    pushed = engine.images.get(test_base)
    pushed.tag(repository, tag)
    client = second.client()
    try:
        for chunk in engine.api.push(repository, tag=tag, stream=True, decode=True):
            assert "error" not in chunk, chunk
        pulled = client.images.pull(repository, tag=tag)
        assert pulled.id == pushed.id
    finally:
        client.images.remove(f"{repository}:{tag}", force=True)  # the store test expects none of the first's
        client.close()
        engine.images.remove(f"{repository}:{tag}")


def test_stop_closes_the_engine_and_leaves_the_first_one_working(tmp_path: Path,
                                                                 engine: docker.DockerClient) -> None:
    before = _bridges()
    with running_engine(tmp_path / "engine", name="stop") as second:
        created = _bridges() - before
        assert len(created) == 1
        client = second.client(version="1.41")
        try:
            assert client.ping() is True
            second.stop()
            second.stop()  # idempotent
            assert not second.running
            with pytest.raises(requests.exceptions.ConnectionError) as info:
                client.ping()
            assert any(isinstance(exc, ConnectionRefusedError) for exc in _chain(info.value)) \
                or "refused" in str(info.value).lower(), repr(info.value)
        finally:
            client.close()
    # The context's exit cleaned up after the early stop.
    assert not (_bridges() & created)
    with pytest.raises(ProcessLookupError):
        os.kill(second.pid, 0)
    assert engine.ping() is True
    first = docker.from_env()
    try:
        assert first.ping() is True
    finally:
        first.close()
    assert subprocess.run(["ip", "link", "show", "docker0"], capture_output=True, check=False).returncode == 0
