"""The one way the `manifest` and `sbom` commands find an image of the stack in the registry."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from stack_builder.config import Config
from stack_builder.errors import StackError
from stack_builder.registry.client import Manifest, RegistryClient
from stack_builder.spec.references import Repository, check_tag

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedImage:
    """An image of the stack as the registry holds it under one tag, with the client that reads it."""

    name: str
    tag: str
    repository: Repository  # on the configured registry
    registry: RegistryClient
    manifest: Manifest  # what the tag points at now: one image, or an index of platform images

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def reference(self) -> str:
        """``repository@digest``: exactly this image, whatever the tag points at later."""
        return f"{self.repository}@{self.digest}"


def find_published(config: Config, image: str, tag: str) -> PublishedImage:
    """The image ``image`` of the stack under ``tag`` in the configured registry. Raises ``StackError`` naming
    what is missing: an option, an image the spec does not have, or the tag in the registry."""
    missing = [option for option, value in (("--image NAME", image), ("--tag TAG", tag)) if not value]
    if missing:
        raise StackError(f"give both --image NAME and --tag TAG ({' and '.join(missing)} missing)")
    spec = config.spec
    spec.require([image])
    check_tag(tag)
    repository = spec.images[image].repository.on(config.registry)
    registry = config.registry_client()
    manifest = registry.get_manifest(repository.path, tag)
    if manifest is None:
        raise StackError(f"{repository}:{tag} is not in registry {config.registry}: check --tag (build pushes "
                         f"<prefix>-<branch>, e.g. {spec.tag_prefix}-main)")
    LOGGER.info("%s:%s is %s", repository, tag, manifest.digest)
    return PublishedImage(image, tag, repository, registry, manifest)
