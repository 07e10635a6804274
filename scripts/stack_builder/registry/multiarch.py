"""Multi-platform images: per-platform tags, and the index assembled registry-side from them.

Each platform is pushed under ``<tag>-<os>-<arch>``; the index lists the platforms that were built
and is checked before it is published: every manifest it names must be in the repository, with a
config whose os/architecture is the platform claimed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from stack_builder.errors import RegistryError
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import DOCKER_LIST, DOCKER_MANIFEST, INDEX_TYPES, OCI_INDEX

LOGGER = logging.getLogger(__name__)

def platform_tag(tag: str, platform: str) -> str:
    return f"{tag}-{platform.replace('/', '-')}"


def split(platform: str) -> dict[str, str]:
    parts = platform.split("/")
    out = {"os": parts[0], "architecture": parts[1]}
    if len(parts) > 2:
        out["variant"] = parts[2]
    return out


@dataclass(frozen=True)
class Entry:
    platform: str
    digest: str
    media_type: str
    size: int


def is_attestation(item: dict[str, object]) -> bool:
    """An index entry that is an attestation (provenance, SBOM), not an image: BuildKit writes these with
    platform unknown/unknown and a ``vnd.docker.reference.type`` annotation."""
    found = item.get("platform")
    annotations = item.get("annotations")
    kind = annotations.get("vnd.docker.reference.type") if isinstance(annotations, dict) else None
    return kind == "attestation-manifest" or (
        isinstance(found, dict) and found.get("os") == "unknown" and found.get("architecture") == "unknown")


def image_entries(index: dict[str, object]) -> list[dict[str, object]]:
    """The entries of an index that are images, attestations left out."""
    items = index.get("manifests")
    return [i for i in items if isinstance(i, dict) and not is_attestation(i)] if isinstance(items, list) else []


ATTESTATION_LAYER = "application/vnd.in-toto+json"  # what an attestation manifest's layers are


def attestation_problems(registry: RegistryClient, repository: str, index: dict[str, object]) -> list[str]:
    """What is wrong with the index's entries marked as attestations: each must be a real attestation manifest
    (in-toto layers only, nothing an engine could run) whose subject is an image of the same index. An entry
    that only looks like one could be pulled and run while every check skips it."""
    items = index.get("manifests")
    images = {str(i.get("digest")) for i in image_entries(index)}
    problems = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not is_attestation(item):
            continue
        digest = str(item.get("digest"))
        annotations = item.get("annotations")
        subject = annotations.get("vnd.docker.reference.digest") if isinstance(annotations, dict) else None
        if subject not in images:
            problems.append(f"entry {digest[:19]} is marked as an attestation, but its subject "
                            f"{str(subject)[:19] if subject else '(none)'} is not an image of the same index")
            continue
        manifest = registry.get_manifest(repository, digest)
        layers = json.loads(manifest.body).get("layers") if manifest is not None and \
            manifest.media_type not in INDEX_TYPES else None
        if not isinstance(layers, list) or not layers or \
                any(not isinstance(x, dict) or x.get("mediaType") != ATTESTATION_LAYER for x in layers):
            problems.append(f"entry {digest[:19]} is marked as an attestation but is not one (an engine could "
                            "run it)")
    return problems


def check_entry(registry: RegistryClient, repository: str, platform: str, digest: str) -> Entry:
    """Confirm ``repository@digest`` exists and is an image of ``platform``.

    An engine with the containerd image store pushes even one platform as an index that also holds
    an attestation: then the index's one image entry is the platform image.
    """
    manifest = registry.get_manifest(repository, digest)
    if manifest is None:
        raise RegistryError(f"{repository}@{digest} ({platform}) is not in the registry")
    if manifest.media_type in INDEX_TYPES:
        index = json.loads(manifest.body)
        hidden = attestation_problems(registry, repository, index)
        if hidden:
            raise RegistryError(f"{repository}@{digest} ({platform}): " + "; ".join(hidden))
        images = image_entries(index)
        if len(images) != 1:
            raise RegistryError(f"{repository}@{digest} ({platform}) is an index of {len(images)} images, "
                                "not one platform image")
        return check_entry(registry, repository, platform, str(images[0]["digest"]))
    config_digest = json.loads(manifest.body)["config"]["digest"]
    config = json.loads(registry.get_blob(repository, config_digest))
    claimed = split(platform)
    actual = {"os": config.get("os"), "architecture": config.get("architecture")}
    if actual != {"os": claimed["os"], "architecture": claimed["architecture"]}:
        raise RegistryError(f"{repository}@{digest} is {actual['os']}/{actual['architecture']}, not {platform}")
    return Entry(platform, digest, manifest.media_type, len(manifest.body))


def build_index(entries: list[Entry]) -> tuple[bytes, str]:
    """The index body and media type: a Docker manifest list for Docker manifests, else an OCI index."""
    media_type = DOCKER_LIST if all(e.media_type == DOCKER_MANIFEST for e in entries) else OCI_INDEX
    body = {"schemaVersion": 2, "mediaType": media_type,
            "manifests": [{"mediaType": e.media_type, "digest": e.digest, "size": e.size,
                           "platform": split(e.platform)} for e in entries]}
    return json.dumps(body, indent=2).encode(), media_type


def publish_index(registry: RegistryClient, repository: str, tags: list[str], entries: list[Entry]) -> str:
    """Check every entry again, then put the index under each tag; return its digest."""
    checked = [check_entry(registry, repository, e.platform, e.digest) for e in entries]
    body, media_type = build_index(checked)
    digest = None
    for tag in tags:
        pushed = registry.put_manifest(repository, tag, body, media_type)
        if digest is not None and pushed != digest:
            raise RegistryError(f"the index of {repository} was stored with two digests ({digest}, {pushed})")
        digest = pushed
        if registry.manifest_digest(repository, tag) != pushed:
            raise RegistryError(f"{repository}:{tag} does not read back as the index just pushed")
    LOGGER.info("%s: index of %s -> %s", repository, ", ".join(e.platform for e in entries), ", ".join(tags))
    return str(digest)


def platform_digest(registry: RegistryClient, repository: str, reference: str, platform: str) -> str | None:
    """The digest of ``platform``'s image under ``reference``: from an index, or the manifest itself."""
    manifest = registry.get_manifest(repository, reference)
    if manifest is None:
        return None
    if manifest.media_type not in INDEX_TYPES:
        return manifest.digest if _matches(registry, repository, manifest.digest, platform) else None
    wanted = split(platform)
    for item in image_entries(json.loads(manifest.body)):
        found = item.get("platform")
        if not isinstance(found, dict):
            continue
        if found.get("os") == wanted["os"] and found.get("architecture") == wanted["architecture"]:
            return str(item["digest"])
    return None


def _matches(registry: RegistryClient, repository: str, digest: str, platform: str) -> bool:
    try:
        check_entry(registry, repository, platform, digest)
        return True
    except RegistryError:
        return False


def platform_manifests(registry: RegistryClient, repository: str, digest: str) -> list[str]:
    """The platform image manifests inside ``repository@digest`` when it is an index (attestations left out);
    none when it is a platform manifest itself, or is not there."""
    manifest = registry.get_manifest(repository, digest)
    if manifest is None or manifest.media_type not in INDEX_TYPES:
        return []
    try:
        return [str(item["digest"]) for item in image_entries(json.loads(manifest.body))]
    except (ValueError, KeyError, TypeError):
        raise RegistryError(f"the index {repository}@{digest} from {registry.host} is malformed") from None
