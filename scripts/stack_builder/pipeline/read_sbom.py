"""`sbom`: the SBOM of one platform image in the registry, found as a referrer of its digest."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from stack_builder.config import Config
from stack_builder.errors import StackError
from stack_builder.records.files import write_text
from stack_builder.registry import multiarch, referrers
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import find_credentials
from stack_builder.registry.mediatypes import INDEX_TYPES, SBOM_ARTIFACT
from stack_builder.spec.references import check_tag

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundSbom:
    reference: str  # repository@digest of the platform image
    platform: str
    artifact: str  # digest of the SBOM artifact
    path: Path
    components: int


def platform_digest(registry: RegistryClient, repository: str, tag: str, platform: str) -> tuple[str, str]:
    """(platform, digest) of the platform image under ``tag``: an index's entry for ``platform`` (or its only
    one), or the image itself."""
    manifest = registry.get_manifest(repository, tag)
    if manifest is None:
        raise StackError(f"{registry.host}/{repository}:{tag} is not in the registry: check --tag")
    if manifest.media_type not in INDEX_TYPES:
        try:
            config = json.loads(registry.get_blob(repository, json.loads(manifest.body)["config"]["digest"]))
        except (ValueError, KeyError, TypeError):
            raise StackError(f"{repository}:{tag} is not an image (no config): give an image's tag") from None
        own = f"{config.get('os')}/{config.get('architecture')}"
        if platform and platform != own:
            raise StackError(f"{repository}:{tag} is one {own} image, not {platform}: leave out --platform")
        return own, manifest.digest
    entries = {}
    for entry in multiarch.image_entries(json.loads(manifest.body)):
        found = entry.get("platform")
        if isinstance(found, dict):
            entries[f"{found.get('os')}/{found.get('architecture')}"] = str(entry["digest"])
    if not platform and len(entries) == 1:
        platform = next(iter(entries))
    if platform not in entries:
        raise StackError(f"{repository}:{tag} holds {', '.join(sorted(entries))}: choose one with --platform"
                         + (f" ({platform} is not there)" if platform else ""))
    return platform, entries[platform]


def fetch_sbom(config: Config, image: str, tag: str, platform: str, output: str) -> FoundSbom:
    spec = config.spec
    if not image or not tag:
        raise StackError("give both --image NAME and --tag TAG")
    spec.require([image])
    check_tag(tag)
    repo = spec.images[image].repository.on(config.registry)
    registry = RegistryClient(config.registry, find_credentials(config.registry))
    platform, digest = platform_digest(registry, repo.path, tag, platform)
    found = referrers.find(registry, repo.path, digest, SBOM_ARTIFACT)
    if not found:
        raise StackError(f"{repo}@{digest} ({platform}) has no SBOM: it was built before SBOMs were made, or by "
                         "another tool; rebuild it (`build --image " + image + " --no-reuse`)")
    newest = found[-1]
    document = referrers.payload(registry, repo.path, newest.digest, digest)
    try:
        components = len(json.loads(document).get("components") or [])
    except (ValueError, AttributeError):
        raise StackError(f"the SBOM {repo}@{newest.digest} is not JSON") from None
    path = Path(output) if output else \
        config.artifacts / "sbom" / f"{image}-{tag}-{platform.replace('/', '-')}.cdx.json"
    write_text(path, document.decode("utf-8"))
    return FoundSbom(f"{repo}@{digest}", platform, newest.digest, path, components)
