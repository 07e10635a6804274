"""Platform names (``linux/amd64``) of this machine and of a Docker engine, which may differ: a remote engine
(DOCKER_HOST=ssh://..., an engine of an ``--engines`` file) builds natively for its own architecture."""
from __future__ import annotations

import logging
import platform as host
from typing import Any, Mapping

LOGGER = logging.getLogger(__name__)

MACHINE_TO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
                   "armv7l": "arm/v7", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_platform() -> str:
    """This machine's platform."""
    return f"linux/{MACHINE_TO_ARCH.get(host.machine(), host.machine())}"


def engine_platform(info: Mapping[str, Any]) -> str:
    """The platform of the engine whose ``GET /info`` answered ``info`` (its OSType and Architecture)."""
    machine = str(info.get("Architecture") or "")
    if not machine:
        return host_platform()
    return f"{str(info.get('OSType') or 'linux')}/{MACHINE_TO_ARCH.get(machine, machine)}"
