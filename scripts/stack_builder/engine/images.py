"""The engine's local image store: look up, tag, pull, prune, inspect; and a digest in a registry, asked through it."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import docker

from stack_builder.engine.client import ENGINE_FAILURES
from stack_builder.errors import RegistryError, StepFailed

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalImage:
    id: str
    platform: str  # os/architecture from the image config
    labels: dict[str, str]
    size: int
    repo_digests: tuple[str, ...] = ()  # repository@digest it was pulled as; none for an imported or built image


def find(client: docker.DockerClient, reference: str) -> LocalImage | None:
    """The local image under ``reference`` (name:tag, name@digest or ID), or None."""
    try:
        image = client.images.get(reference)
    except docker.errors.ImageNotFound:
        return None
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"cannot inspect {reference}: {exc}") from None
    attrs = dict(image.attrs)
    return LocalImage(str(image.id), f"{attrs.get('Os')}/{attrs.get('Architecture')}",
                      dict(image.labels or {}), int(attrs.get("Size") or 0),
                      tuple(str(d) for d in attrs.get("RepoDigests") or ()))


def registry_digest(client: docker.DockerClient, reference: str, *, auth: dict[str, str] | None = None) -> str | None:
    """The digest a registry holds under ``reference`` now (an index's, for a multi-platform tag), asked
    through the engine: its mirrors, credentials and insecure-registry settings apply, and nothing is pulled.
    None when the registry has no such manifest; ``RegistryError`` when it cannot be asked.
    """
    try:
        found = client.api.inspect_distribution(reference, auth_config=auth)
    except docker.errors.NotFound:
        return None
    except ENGINE_FAILURES as exc:
        reason = getattr(exc, "explanation", None) or str(exc)  # the engine's own words, without its URL
        raise RegistryError(f"cannot ask the registry of {reference} for its digest (through the engine): "
                            f"{str(reason).splitlines()[0][:300]}") from None
    digest = (found.get("Descriptor") or {}).get("digest") if isinstance(found, dict) else None
    if not digest:
        raise RegistryError(f"the engine's answer for {reference} names no digest")
    return str(digest)


def history(client: docker.DockerClient, image_id: str) -> list[dict[str, Any]]:
    try:
        return list(client.api.history(image_id))
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"cannot read the history of {image_id}: {exc}") from None


def tag(client: docker.DockerClient, image_id: str, repository: str, tags: list[str]) -> None:
    try:
        for name in tags:
            client.api.tag(image_id, repository, name, force=True)
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"could not tag the image: {exc}") from None


def pull(client: docker.DockerClient, repository: str, reference: str, *, auth: dict[str, str] | None,
         platform: str | None = None) -> None:
    """Pull ``repository`` at a tag or digest; raise ``StepFailed`` with the engine's reason."""
    try:
        client.api.pull(repository, tag=reference, auth_config=auth, platform=platform)
    except ENGINE_FAILURES as exc:
        raise StepFailed(f"cannot pull {repository}{'@' if reference.startswith('sha256:') else ':'}{reference}: "
                         f"{exc}") from None


def remove(client: docker.DockerClient, references: list[str]) -> list[str]:
    """Untag or remove each local reference; return those removed. Images still in use stay."""
    removed = []
    for reference in references:
        try:
            client.api.remove_image(reference, noprune=False)
            removed.append(reference)
        except docker.errors.ImageNotFound:
            continue
        except ENGINE_FAILURES as exc:
            LOGGER.warning("could not remove %s: %s", reference, exc)
    return removed
