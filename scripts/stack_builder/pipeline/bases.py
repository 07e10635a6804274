"""A root's upstream base: the name and digest its image records, and where that base stands now.

A root builds FROM an image outside the stack (its Dockerfile's FROM, e.g. ``debian:bookworm-slim``).
Its image records that base in two OCI labels: ``org.opencontainers.image.base.name``, the name the
build used, and ``org.opencontainers.image.base.digest``:

- for a base in a registry, the digest its tag names there. For a multi-platform base that is the
  index's digest, the same for every platform: what ``docker pull`` prints and records as the image's
  RepoDigest, and what the engine can ask any registry for without pulling;
- for a base only in the local engine (seeded with mmdebstrap, imported, built here), its image ID. A
  local stand-in for an official name (``engine.local_bases``) is recorded by its local name;
- for a FROM pinned by digest, that digest.

Where the build finds the base follows ``image_job._root_base`` and BuildKit: a root with
``ARG BASE_IMAGE=<target registry>/...`` built for another platform (or for several) takes it from the
target registry; otherwise a local image of the platform under the name comes first, then the
name's registry.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from stack_builder import platforms
from stack_builder.engine import images, local_bases
from stack_builder.engine.client import Engine
from stack_builder.engine.images import LocalImage
from stack_builder.errors import EngineError, RegistryError, StepFailed
from stack_builder.registry import multiarch
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.dockerfile import base_arg_default, final_base
from stack_builder.spec.references import split_host, split_reference
from stack_builder.spec.stack_spec import ImageSpec

LOGGER = logging.getLogger(__name__)

BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
LOCAL = "the local engine"


@dataclass(frozen=True)
class Base:
    """A root's base: the name the build uses, its digest (or local image ID), and where that was read."""

    name: str
    digest: str
    where: str

    def labels(self) -> dict[str, str]:
        return {BASE_NAME: self.name, BASE_DIGEST: self.digest}


class BaseFinder:
    """Finds a root's base for one platform: as a build uses it, or as it stands now."""

    def __init__(self, *, registry_host: str, lookups: Lookups | None, engine: Engine | None,
                 native: str | None = None, auth: dict[str, str] | None = None) -> None:
        self.registry_host = registry_host
        self.lookups = lookups  # the target registry's; None when it is not asked
        self.engine = engine  # local images, and any other registry (asked through the engine)
        self.native = native or platforms.host_platform()
        self.auth = auth  # credentials for the target registry, for a pull

    def as_built(self, image: ImageSpec, platform: str) -> Base | None:
        """The base this platform's build uses: a local copy first (BuildKit prefers it), recorded by the
        digest it was pulled at when it came from a registry. None (after a warning) when it cannot be told."""
        try:
            return self._locate(image, platform, fresh=False)
        except (RegistryError, EngineError, StepFailed) as exc:
            LOGGER.warning("%s (%s): its base is not recorded in its labels: %s", image.name, platform, exc)
            return None

    def current(self, image: ImageSpec, platform: str) -> Base | None:
        """The base as it stands now: a base pulled from a registry is asked for there again; one only in the
        local engine is read there. None for a root FROM scratch (or a FROM no build arg names).
        Raises ``RegistryError`` or ``EngineError`` when the place that holds it cannot be asked."""
        return self._locate(image, platform, fresh=True)

    def pull_again(self, image: ImageSpec, platform: str) -> str | None:
        """Pull this platform's base again when the engine holds a copy pulled from a registry, so that a
        build after ``--refresh-base`` uses the base as it is now, not the old copy; return the name pulled."""
        if self.engine is None:
            return None
        for name in self._candidates(image, platform) or []:
            if local_bases.find(self.engine, name, platform) is not None:
                return None  # this machine's own copy: nothing to pull
            found = self._local(name, platform)
            if found is None:
                continue
            if _pulled_digest(found, name) is None:
                return None  # only here: nothing to pull
            host, path = split_host(name)
            repository, reference = split_reference(path)
            full = f"{host}/{repository}" if host else repository
            LOGGER.info("%s (%s): pulling its base %s again", image.name, platform, name)
            images.pull(self.engine, full, reference, auth=self.auth if host == self.registry_host else None,
                        platform=platform)
            return name
        return None

    # -- where the build looks ------------------------------------------------------------------

    def _registry_default(self, image: ImageSpec, platform: str) -> str | None:
        """``ARG BASE_IMAGE=<target registry>/...`` that ``_root_base`` resolves in that registry, else None."""
        default = base_arg_default(image.dockerfile)
        if default is None or not self._job_names_base(image, platform):
            return None
        host, _, rest = default.partition("/")
        return default if host == self.registry_host and rest else None

    def _job_names_base(self, image: ImageSpec, platform: str) -> bool:
        """Whether ``_root_base`` passes BASE_IMAGE itself: another platform than the engine's, or several."""
        return platform != self.native or len(image.platforms) > 1

    def _candidates(self, image: ImageSpec, platform: str) -> list[str] | None:
        """Local names the build would use, in order; None when its base is a registry's or none at all."""
        if self._registry_default(image, platform):
            return None
        default = base_arg_default(image.dockerfile)
        if default is not None and self._job_names_base(image, platform):
            return [default, multiarch.platform_tag(default, platform)]
        name = final_base(image.dockerfile, dict(image.build_args))
        return [name] if name is not None else None

    def _locate(self, image: ImageSpec, platform: str, *, fresh: bool) -> Base | None:
        in_registry = self._registry_default(image, platform)
        if in_registry is not None:
            return self._in_registry(in_registry)
        for name in self._candidates(image, platform) or []:
            if "@" in name:
                return self._in_registry(name)
            stand_in = local_bases.find(self.engine, name, platform)
            if stand_in is not None:
                return Base(stand_in.name, stand_in.id, LOCAL)
            found = self._local(name, platform)
            if found is None:
                continue
            pulled = _pulled_digest(found, name)
            if pulled is None:
                return Base(name, found.id, LOCAL)
            return self._in_registry(name) if fresh else Base(name, pulled, f"{LOCAL} (pulled from its registry)")
        resolved = final_base(image.dockerfile, dict(image.build_args))  # BuildKit resolves the name itself
        return self._in_registry(resolved) if resolved is not None else None

    def _local(self, name: str, platform: str) -> LocalImage | None:
        if self.engine is None:
            return None
        found = images.find(self.engine, name)
        return found if found is not None and found.platform == platform else None

    def _in_registry(self, name: str) -> Base:
        host, path = split_host(name)
        repository, reference = split_reference(path)
        if reference.startswith("sha256:"):
            return Base(name, reference, "pinned by digest")
        if host == self.registry_host:
            if self.lookups is None:
                raise RegistryError(f"registry {host}, which holds the base {name}, is not asked in this run")
            digest = self.lookups.digest(repository, reference)
        else:
            if self.engine is None:
                raise EngineError(f"no Docker engine answers: the base {name} is looked up in the engine, and its "
                                  "registry asked through it")
            digest = images.registry_digest(self.engine, name)
        if digest is None:
            raise RegistryError(f"the base {name} is neither in the local engine nor in registry "
                                f"{host or 'docker.io'}")
        return Base(name, digest, f"registry {host or 'docker.io'}")


def _pulled_digest(found: LocalImage, name: str) -> str | None:
    """The digest ``found`` was pulled at from ``name``'s repository; None for an image only in the engine."""
    host, path = split_host(name)
    repository = _familiar(f"{host}/{split_reference(path)[0]}" if host else split_reference(path)[0])
    for pulled in found.repo_digests:
        pulled_repository, _, digest = pulled.partition("@")
        if _familiar(pulled_repository) == repository and digest:
            return digest
    return None


def _familiar(repository: str) -> str:
    """Docker Hub names as the engine shows them: ``docker.io/library/debian`` is ``debian``."""
    for prefix in ("docker.io/", "index.docker.io/"):
        repository = repository.removeprefix(prefix)
    return repository.removeprefix("library/")
