"""`sbom`: the SBOM of one platform image in the registry, found as a referrer of its digest."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from stack_builder.config import Config
from stack_builder.errors import StackError
from stack_builder.published.image import PublishedImage, find_published
from stack_builder.records.files import write_text
from stack_builder.registry import multiarch, referrers
from stack_builder.registry.mediatypes import INDEX_TYPES, SBOM_ARTIFACT

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundSbom:
    reference: str  # repository@digest of the platform image
    platform: str
    artifact: str  # digest of the SBOM artifact
    path: Path
    components: int


def platform_digest(published: PublishedImage, platform: str) -> tuple[str, str]:
    """(platform, digest) of the platform image under the published tag: an index's entry for ``platform`` (or
    its only one), or the image itself."""
    where = f"{published.repository.path}:{published.tag}"
    if published.manifest.media_type not in INDEX_TYPES:
        try:
            config_digest = json.loads(published.manifest.body)["config"]["digest"]
            config = json.loads(published.registry.get_blob(published.repository.path, config_digest))
        except (ValueError, KeyError, TypeError):
            raise StackError(f"{where} is not an image (no config): give an image's tag") from None
        own = f"{config.get('os')}/{config.get('architecture')}"
        if platform and platform != own:
            raise StackError(f"{where} is one {own} image, not {platform}: leave out --platform")
        return own, published.digest
    entries = {}
    for entry in multiarch.image_entries(json.loads(published.manifest.body)):
        found = entry.get("platform")
        if isinstance(found, dict):
            entries[f"{found.get('os')}/{found.get('architecture')}"] = str(entry["digest"])
    if not platform and len(entries) == 1:
        platform = next(iter(entries))
    if platform not in entries:
        raise StackError(f"{where} holds {', '.join(sorted(entries))}: choose one with --platform"
                         + (f" ({platform} is not there)" if platform else ""))
    return platform, entries[platform]


def fetch_sbom(config: Config, image: str, tag: str, platform: str, output: str) -> FoundSbom:
    """Write the newest SBOM of the platform image to ``output`` (default: artifacts/sbom/...)."""
    published = find_published(config, image, tag)
    repo = published.repository
    platform, digest = platform_digest(published, platform)
    found = referrers.find(published.registry, repo.path, digest, SBOM_ARTIFACT)
    if not found:
        raise StackError(f"{repo}@{digest} ({platform}) has no SBOM: it was built before SBOMs were made, or by "
                         "another tool; rebuild it (`build --image " + image + " --no-reuse`)")
    newest = found[-1]
    document = referrers.payload(published.registry, repo.path, newest.digest, digest)
    try:
        components = len(json.loads(document).get("components") or [])
    except (ValueError, AttributeError):
        raise StackError(f"the SBOM {repo}@{newest.digest} is not JSON") from None
    path = Path(output) if output else \
        config.artifacts / "sbom" / f"{image}-{tag}-{platform.replace('/', '-')}.cdx.json"
    write_text(path, document.decode("utf-8"))
    LOGGER.info("SBOM of %s@%s (%s): %d components -> %s", repo, digest, platform, components, path)
    return FoundSbom(f"{repo}@{digest}", platform, newest.digest, path, components)
