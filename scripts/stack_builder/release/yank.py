"""`yank`: revoke a published digest. The revocation is recorded first, then the tags on it are removed.

Only the tags of the image's repository that point at the digest go; tags on other digests stay. An
index is yanked with the platform images it lists (reuse finds those by their platform tags); a
platform image that another index (not yanked) still lists is recorded as yanked but keeps its tags,
since deleting it would break that index, and the output says to yank that index too. The OCI
distribution API removes tags by deleting the manifest by digest (the local registry 2.8 has no tag
deletion), so the yanked digest can no longer be pulled from this registry either; GHCR refuses
that DELETE, so there the package version is deleted through the GitHub Packages API.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field

from stack_builder import signals
from stack_builder.config import Config
from stack_builder.errors import RegistryError, StackError, shown
from stack_builder.release.promote import who
from stack_builder.records import revocations
from stack_builder.records.files import utc_now
from stack_builder.records.wiki import Wiki
from stack_builder.registry import github_packages, multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import INDEX_TYPES

LOGGER = logging.getLogger(__name__)

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ARTIFACT_TAG_RE = re.compile(r"^sha256-[0-9a-f]{64}(\..+)?$")  # referrers, signatures, gate and yank records
MAX_REASON = 500


@dataclass
class YankPlan:
    image: str
    repository: str  # host/path
    digests: list[str]  # the digest given, then the platform images of an index
    tags: dict[str, list[str]] = field(default_factory=dict)  # digest -> the tags on it now
    already: list[str] = field(default_factory=list)  # digests yanked before
    stable: list[str] = field(default_factory=list)  # stable tags on it, or on an index that lists it
    listed_by: dict[str, list[str]] = field(default_factory=dict)  # digest -> tags of other indexes listing it

    def removable(self, digest: str) -> bool:
        """Its tags can go: no index that is not yanked lists it (deleting it would break that index)."""
        return bool(self.tags.get(digest)) and not self.listed_by.get(digest)

    def lines(self) -> list[str]:
        out = [f"yank {self.repository}@{self.digests[0]}"]
        for digest in self.digests:
            tags = self.tags.get(digest, [])
            note = " (already yanked)" if digest in self.already else ""
            if self.listed_by.get(digest):
                out.append(f"  {digest}{note}: recorded as yanked; its tags ({', '.join(tags) or 'none'}) stay, since "
                           f"{', '.join(self.listed_by[digest])} list it: yank that index too")
            else:
                out.append(f"  {digest}{note}: remove {', '.join(tags) or 'no tag'}")
        return out

    def rollback_hint(self) -> str:
        if not self.stable:
            return ""
        commands = ["stack-builder tag --rollback --global-stable" if t == "stable" else
                    f"stack-builder tag --rollback --tag {t.removesuffix('-stable')}" for t in self.stable]
        return (f"it was the current {', '.join(self.stable)}: roll back to the images before it with "
                + " and ".join(f"`{c}`" for c in commands))


def yank(config: Config, image: str, digest: str, reason: str, *, dry_run: bool) -> YankPlan:
    spec = config.spec
    if not image or not digest:
        raise StackError("give --image NAME and --digest sha256:<64 hex> (the digest to revoke)")
    spec.require([image])
    if not DIGEST_RE.fullmatch(digest):
        raise StackError(f"--digest '{shown(digest, 80)}' is not a digest: give sha256:<64 lowercase hex>, as "
                         "`docker buildx imagetools inspect` or the build report shows it")
    reason = " ".join(reason.split())
    if not reason:
        raise StackError('--reason is required: say why it is yanked, e.g. --reason "CVE-2026-1234 in openssl"')
    if len(reason) > MAX_REASON:
        raise StackError(f"--reason is {len(reason)} characters; keep it under {MAX_REASON} (link to details)")
    repo = spec.images[image].repository.on(config.registry)
    registry = config.registry_client()
    plan = _plan(registry, image, repo.path, f"{repo}", digest)
    if dry_run:
        return plan
    time, by = utc_now(), who(config.settings.ci.actor)
    with signals.handling():
        for item in plan.digests:  # every revocation first: from here on the digests are refused
            signals.check()
            revocations.write(registry, revocations.Revocation(
                image=image, repository=repo.path, digest=item, reason=reason, time=time, by=by,
                tags_removed=plan.tags.get(item, []) if plan.removable(item) else []))
        pages = Wiki(config.wiki_dir)  # marked before any tag goes: what is recorded is shown, whatever follows
        for item in plan.digests:
            pages.mark_yanked({"image": image, "repository": str(repo), "digest": item, "reason": reason,
                               "time": time, "by": by,
                               "tags_removed": plan.tags.get(item, []) if plan.removable(item) else []})
        pages.render(spec)
        deleted: list[str] = []
        for item in plan.digests:
            if not plan.removable(item):
                continue
            signals.check()
            try:
                github_packages.remove_manifest(registry, repo.path, item)
            except RegistryError as exc:
                left = [t for d in plan.digests if d not in deleted and plan.removable(d) for t in plan.tags[d]]
                raise StackError(f"the yank is recorded (promotion, rollback and reuse refuse {digest}), but the "
                                 f"registry would not remove the tags: {exc}. Still there: {', '.join(left)}; "
                                 "remove them in the registry, then run the same yank again") from None
            deleted.append(item)
    still = sorted(t for d in deleted for t in plan.tags[d] if registry.manifest_digest(repo.path, t) == d)
    if still:
        raise StackError(f"the yank is recorded, but these tags still point at it: {', '.join(still)}")
    return plan


def _plan(registry: RegistryClient, image: str, path: str, repository: str, digest: str) -> YankPlan:
    manifest = registry.get_manifest(path, digest)
    known = revocations.read(registry, path, digest)
    if manifest is None and known is None:
        raise StackError(f"{repository}@{digest} is not in registry {registry.host}: check --image and --digest")
    digests = [digest]
    if manifest is not None and manifest.media_type in INDEX_TYPES:
        # Every entry, attestations included: whatever the index can serve is revoked with it.
        items = json.loads(manifest.body).get("manifests")
        digests += [str(e["digest"]) for e in items if isinstance(e, dict) and "digest" in e] \
            if isinstance(items, list) else []
    plan = YankPlan(image, repository, digests)
    wanted = set(digests)
    others: dict[str, list[str]] = {}  # digest -> tags, for every other manifest tagged in the repository
    for tag in sorted(registry.tags(path)):
        if ARTIFACT_TAG_RE.match(tag):
            continue
        found = registry.manifest_digest(path, tag)
        if found in wanted:
            plan.tags.setdefault(str(found), []).append(tag)
        elif found is not None:
            others.setdefault(found, []).append(tag)
    stable_tags = [t for t in plan.tags.get(digest, [])]
    for other, tags in others.items():  # an index that is not yanked, listing a yanked platform image
        found_manifest = registry.get_manifest(path, other)
        if found_manifest is None or found_manifest.media_type not in INDEX_TYPES:
            continue
        listed = {str(e["digest"]) for e in multiarch.image_entries(json.loads(found_manifest.body))}
        for item in wanted & listed:
            plan.listed_by.setdefault(item, []).extend(f"{repository}:{t}" for t in tags)
            stable_tags += tags
    plan.already = [d for d in digests if revocations.read(registry, path, d) is not None]
    plan.stable = sorted({t for t in stable_tags if t == "stable" or t.endswith("-stable")})
    return plan
