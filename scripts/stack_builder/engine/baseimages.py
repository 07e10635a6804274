"""Make sure the images the stack's roots build FROM are in the engine.

Pull them; where no registry can be reached, seed Debian images from Debian's archive with
mmdebstrap under the name the Dockerfile uses. When the network intercepts TLS (the host
trusts an authority that the public bundle does not), the seeded image trusts it too:
an opt-in of the set-up, never something a stack's Dockerfiles must carry. Such an image is not the
official one, so it gets a local name (``localhost/host-ca/debian:bookworm-slim``, see
``local_bases``), and builds FROM the official name use it.

Usage: python -m stack_builder.engine.baseimages --stack DIR
"""
from __future__ import annotations

import argparse
import logging
import re
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

from stack_builder.engine import client as engine
from stack_builder.engine import images, local_bases, package_sources
from stack_builder.errors import StackError
from stack_builder.settings import EngineSettings
from stack_builder.spec.dockerfile import base_images
from stack_builder.spec.stack_spec import load_spec

LOGGER = logging.getLogger(__name__)

HOST_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
MOZILLA_ROOTS = Path("/usr/share/ca-certificates/mozilla")
DESCRIPTION = "org.opencontainers.image.description"
SEEDED = "seeded-with-mmdebstrap"
DEBIAN_RE = re.compile(r"^(?:docker\.io/)?(?:library/)?debian:(?P<suite>[a-z]+)(?P<slim>-slim)?$")


def network_intercepts_tls(host: str | None = None, settings: EngineSettings | None = None) -> bool:
    """True when ``host``'s certificate verifies with the host's bundle but not with the public roots. ``host``:
    by default the first HTTPS package index pip is configured with (``package_sources``).

    The public roots are Debian's copy of Mozilla's set (certifi may have been patched locally).
    STACK_TRUST_HOST_CA=1 or 0 overrides the check (``settings``: default, the environment as it is now).
    """
    setting = (EngineSettings.from_env() if settings is None else settings).trust_host_ca
    if setting is not None:
        return setting
    public = sorted(MOZILLA_ROOTS.glob("*.crt"))
    if not public or not HOST_BUNDLE.is_file():
        return False
    if host is None:
        hosts = package_sources.pip_index_hosts()
        if not hosts:
            LOGGER.info("no HTTPS package index is configured to check for TLS interception; set "
                        "STACK_TRUST_HOST_CA=1 if this network intercepts TLS")
            return False
        host = hosts[0]
    public_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    public_ctx.load_verify_locations(cadata="".join(p.read_text() for p in public))
    host_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    host_ctx.load_verify_locations(cafile=str(HOST_BUNDLE))
    return not _verifies(public_ctx, host) and _verifies(host_ctx, host)


def _verifies(context: ssl.SSLContext, host: str) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except (OSError, ssl.SSLError):
        return False


def ensure(stack_dir: Path) -> list[str]:
    """Make every root's base image present; return the ones seeded or pulled."""
    spec = load_spec(stack_dir)
    client = engine.connect()
    wanted = sorted({name for root in spec.roots for name in base_images(spec.images[root].dockerfile)})
    done = []
    for name in wanted:
        local = local_bases.local_name(name)
        if local is not None and images.find(client, local) is not None:
            LOGGER.info("base image %s is present as %s", name, local)
            continue
        present = images.find(client, name)
        if present is not None and local is not None and _carries_host_ca(client, name):
            _rename(client, name, local)
            continue
        if present is not None:
            LOGGER.info("base image %s is present", name)
            continue
        if _pull(client, name):
            done.append(name)
            continue
        match = DEBIAN_RE.match(name)
        if not match:
            raise StackError(f"base image {name} is not in the engine and cannot be pulled; load it "
                             "(docker load / docker import) under that name, then run the set-up again")
        trust_host_ca = network_intercepts_tls()
        seeded = local if trust_host_ca and local is not None else name
        seed_debian(client, seeded, suite=match.group("suite"), trust_host_ca=trust_host_ca)
        done.append(seeded)
    return done


def _carries_host_ca(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine's ``name`` is an earlier set-up's seed that trusts the host's CA under the official name."""
    config = client.images.get(name).attrs.get("Config") or {}
    return (config.get("Labels") or {}).get(DESCRIPTION) == SEEDED and f"PIP_CERT={HOST_BUNDLE}" in (config.get("Env") or [])


def _rename(client: docker.DockerClient, name: str, local: str) -> None:
    """Give an earlier set-up's host-CA seed its local name, and take the official name off it."""
    repository, _, tag = local.rpartition(":")
    client.api.tag(name, repository, tag)
    client.api.remove_image(name, noprune=True)
    LOGGER.info("base image %s carries this host's certificate authority: renamed %s", name, local)


def _pull(client: docker.DockerClient, name: str) -> bool:
    repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "latest")
    try:
        client.api.pull(repository, tag=tag)
    except engine.ENGINE_FAILURES as exc:
        LOGGER.info("cannot pull %s (%s)", name, str(exc).splitlines()[0][:160])
        return False
    LOGGER.info("pulled %s", name)
    return True


def seed_debian(client: docker.DockerClient, name: str, *, suite: str, trust_host_ca: bool) -> None:
    """Build a minimal Debian root filesystem with mmdebstrap and import it as ``name``."""
    LOGGER.info("seeding %s from Debian's archive with mmdebstrap%s", name,
                " (trusting the host's certificate authority)" if trust_host_ca else "")
    command = ["mmdebstrap", "--quiet", "--variant=minbase", "--include=ca-certificates"]
    changes = [f"LABEL {DESCRIPTION}={SEEDED}"]
    if trust_host_ca:
        # Fixed hook text; "$1" is the root filesystem mmdebstrap passes to the hook.
        command += [f'--customize-hook=cp {HOST_BUNDLE} "$1/usr/local/share/ca-certificates/host-ca.crt"',
                    '--customize-hook=chroot "$1" update-ca-certificates']
        changes += ["ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                    "ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt"]
    mirror = package_sources.apt_mirror()
    if mirror is None:
        raise StackError(f"cannot seed {name}: no Debian archive in apt's sources (/etc/apt/sources.list.d/*.sources "
                         "or /etc/apt/sources.list); add one, or load the image under that name")
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        try:
            subprocess.run([*command, suite, str(tarball), mirror], check=True, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise StackError("mmdebstrap is not installed: apt-get install mmdebstrap (setup.sh does)") from None
        except subprocess.CalledProcessError as exc:
            raise StackError(f"mmdebstrap failed (exit {exc.returncode}) seeding {name}") from None
        repository, _, tag = name.rpartition(":")
        client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
    LOGGER.info("seeded %s", name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", type=Path, default=Path.cwd(), help="the stack folder")
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[base images] %(message)s")
    try:
        ensure(options.stack.resolve())
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
