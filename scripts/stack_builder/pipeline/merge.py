"""`merge`: assemble each multi-platform image's index from its per-platform tags, registry-side."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from stack_builder.errors import StackError, StepFailed
from stack_builder.plan.revision import Revision
from stack_builder.records.files import read_json
from stack_builder.records import gates
from stack_builder.pipeline import agreement
from stack_builder.plan.plan import primary_platform
from stack_builder.registry import multiarch, statements
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.signing import Signing
from stack_builder.registry.mediatypes import INDEX_TYPES
from stack_builder.spec.stack_spec import Spec

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Merged:
    image: str
    merged: bool
    platforms: tuple[str, ...]
    digest: str = ""
    missing: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()  # platforms whose branch tag holds another commit's image
    unsigned: str = ""  # why the index could not be signed (it is published, and a promotion will refuse it)
    disagreeing: tuple[tuple[str, str], ...] = ()  # (platform, why): a model's platforms left out of the index


def merge(spec: Spec, revision: Revision, registry: RegistryClient, host: str, names: list[str], *,
          signing: Signing | None = None, content_tags: Mapping[str, list[str]] | None = None,
          example_outputs: Mapping[str, Mapping[str, str]] | None = None) -> list[Merged]:
    """Merge ``names`` (the multi-platform ones among them) from this commit's platform images only; an
    image missing a required platform is not merged.

    A platform image counts when this commit's job published it: it is under the per-commit platform tag
    (``<prefix>-git-<sha12>-<os>-<arch>``, written once), or, where there is no per-commit tag (a dirty
    checkout), its revision label is this commit. A branch's platform tag left from an older commit is
    never merged: it is reported, and ``require_all_platforms`` then refuses the index.
    """
    tag, commit_tag = revision.tags(spec.tag_prefix)
    results = []
    for name in [n for n in names if len(spec.images[n].platforms) > 1]:
        image = spec.images[name]
        repo = image.repository.on(host)
        entries, missing, stale = _this_commits_platforms(registry, repo.path, image.platforms, revision, tag,
                                                          commit_tag)
        for platform, digest in stale.items():
            LOGGER.warning("%s: %s's %s image (%s) was not published by commit %s: left out of the index", name,
                           multiarch.platform_tag(tag, platform), platform, digest[:19], revision.commit[:12])
        outputs = dict((example_outputs or {}).get(name, {}))
        if signing is not None:  # merged only on a statement: a planted platform image is left out
            entries, unvouched, stated = _vouched(signing, registry, str(repo), entries, revision.commit)
            missing += unvouched
            outputs = {**stated, **outputs}  # a reused platform's outputs come with its statement
        disagree: dict[str, str] = {}
        if image.model is not None:  # the platform jobs' outputs on the examples, from their reports
            disagree = agreement.disagreeing(image.model, {e.platform: outputs[e.platform] for e in entries
                                                           if e.platform in outputs},
                                             reference=primary_platform(image.platforms))
            for platform, why in disagree.items():
                LOGGER.error("%s (%s): left out of the index: %s", name, platform, why)
            entries = [e for e in entries if e.platform not in disagree]
            missing += list(disagree)
        if not entries or (missing and image.require_all_platforms):
            results.append(Merged(name, False, (), missing=tuple(missing), stale=tuple(stale),
                                  disagreeing=tuple(disagree.items())))
            continue
        digest = multiarch.publish_index(registry, repo.path, [tag], entries)
        extra = [t for t in (content_tags or {}).get(name, []) if t.startswith(f"{tag}-")]
        if extra:  # the platform jobs worked them out (and checked them); the index carries them
            multiarch.publish_index(registry, repo.path, extra, entries)
        if commit_tag and registry.manifest_digest(repo.path, commit_tag) is None:  # written once
            multiarch.publish_index(registry, repo.path, [commit_tag], entries)
        unsigned = _merge_model_records(registry, repo.path, name, digest, entries, signing) \
            if image.model is not None else ""
        if signing is not None and signing.can_sign:  # each platform image was signed by its own job
            try:
                signing.sign(f"{repo}@{digest}", registry.credentials)
                statements.attach(signing, f"{repo}@{digest}", statements.BuildStatement(
                    digest, name, revision.commit, "", parents=tuple(e.digest for e in entries),
                    content_tags=tuple(extra)), registry.credentials)
            except StepFailed as exc:  # the other images are still merged; the run fails at the end
                unsigned = str(exc)
                LOGGER.error("%s: %s", name, exc)
        results.append(Merged(name, True, tuple(e.platform for e in entries), digest, stale=tuple(stale),
                              unsigned=unsigned, disagreeing=tuple(disagree.items())))
    return results


def _vouched(signing: Signing, registry: RegistryClient, repo: str, entries: list[multiarch.Entry], commit: str
             ) -> tuple[list[multiarch.Entry], list[str], dict[str, str]]:
    """(entries with a valid statement, platforms without one, example outputs the statements carry)."""
    kept, unvouched, outputs = [], [], {}
    for entry in entries:
        found = statements.verified(signing, f"{repo}@{entry.digest}", registry.credentials, commit=commit)
        if not found:
            LOGGER.error("%s@%s (%s): no statement signed by %s: left out of the index", repo, entry.digest[:19],
                         entry.platform, signing.describe())
            unvouched.append(entry.platform)
            continue
        kept.append(entry)
        if found[0].example_output:
            outputs[entry.platform] = found[0].example_output
    return kept, unvouched, outputs


def _this_commits_platforms(registry: RegistryClient, repository: str, platforms: tuple[str, ...],
                            revision: Revision, tag: str, commit_tag: str | None
                            ) -> tuple[list[multiarch.Entry], list[str], dict[str, str]]:
    """(entries, missing, stale): the platform images this commit published, the platforms it did not, and the
    branch tags that hold another commit's image."""
    entries, missing, stale = [], [], {}
    for platform in platforms:
        branch_digest = registry.manifest_digest(repository, multiarch.platform_tag(tag, platform))
        # This commit's own platform image: under its per-commit platform tag, which is written once
        # (a rebuild of the same commit leaves it, and this index, on the first digest).
        digest = registry.manifest_digest(repository, multiarch.platform_tag(commit_tag, platform)) \
            if commit_tag else branch_digest
        if digest is not None and (commit_tag or _revision_of(registry, repository, digest) == revision.commit):
            entries.append(multiarch.Entry(platform, digest, "", 0))
            continue
        missing.append(platform)
        if branch_digest is not None:
            stale[platform] = branch_digest
    return entries, missing, stale


def _revision_of(registry: RegistryClient, repository: str, digest: str) -> str | None:
    """The revision label of a platform image (None for an index, or when it has none)."""
    manifest = registry.get_manifest(repository, digest)
    if manifest is None or manifest.media_type in INDEX_TYPES:
        return None
    try:
        config = json.loads(registry.get_blob(repository, json.loads(manifest.body)["config"]["digest"]))
        labels = (config.get("config") or {}).get("Labels") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    revision = labels.get("org.opencontainers.image.revision")
    return str(revision) if revision else None


def planned_images(artifacts: Path) -> list[str]:
    """The images of the last `plan` in this stack (artifacts/plan.json), or none."""
    plan = read_json(artifacts / "plan.json", what="the plan written by `plan`", default={})
    images = plan.get("images") if isinstance(plan, dict) else None
    if images is None:
        return []
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        raise StackError(f"{artifacts / 'plan.json'}: 'images' is not a list of image names: run `plan` again")
    return images


def _merge_model_records(registry: RegistryClient, repository: str, name: str, digest: str,
                         entries: list[multiarch.Entry], signing: Signing | None) -> str:
    """The index's model record: passed only if every platform's record passed; with signing, this job's signed
    statement of it too. Returns why that statement could not be attached ("": it was, or no signing)."""
    records = {e.platform: gates.read_record(registry, repository, e.digest, gates.MODEL) for e in entries}
    passed = all(r is not None and r.passed for r in records.values())
    missing = [p for p, r in records.items() if r is None]
    summary = f"missing records for {', '.join(missing)}" if missing else \
        ("all platforms passed" if passed else "a platform failed")
    details = {"drift_status": "per platform",
               "platforms": {p: r.as_json() if r is not None else None for p, r in records.items()}}
    try:
        gates.write_record(registry, repository, digest, gates.GateRecord(gates.MODEL, name, passed, summary, details),
                           signing=signing)
    except StepFailed as exc:  # the record is stored; a promotion refuses it for want of the statement
        LOGGER.error("%s: %s", name, exc)
        return str(exc)
    return ""
