"""`merge`: assemble each multi-platform image's index from its per-platform tags, registry-side."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from stack_builder.plan.revision import Revision
from stack_builder.records import gates
from stack_builder.registry import multiarch
from stack_builder.registry.client import RegistryClient
from stack_builder.spec.stack_spec import Spec


@dataclass(frozen=True)
class Merged:
    image: str
    merged: bool
    platforms: tuple[str, ...]
    digest: str = ""
    missing: tuple[str, ...] = ()


def merge(spec: Spec, revision: Revision, registry: RegistryClient, host: str, names: list[str]) -> list[Merged]:
    """Merge ``names`` (the multi-platform ones among them); an image missing a required platform is not merged."""
    tag, commit_tag = revision.tags(spec.tag_prefix)
    results = []
    for name in [n for n in names if len(spec.images[n].platforms) > 1]:
        image = spec.images[name]
        repo = image.repository.on(host)
        entries, missing = [], []
        for platform in image.platforms:
            digest = registry.manifest_digest(repo.path, multiarch.platform_tag(tag, platform))
            if digest is None:
                missing.append(platform)
            else:
                entries.append(multiarch.Entry(platform, digest, "", 0))
        if not entries or (missing and image.require_all_platforms):
            results.append(Merged(name, False, (), missing=tuple(missing)))
            continue
        digest = multiarch.publish_index(registry, repo.path, [t for t in (tag, commit_tag) if t], entries)
        if image.model is not None:
            _merge_model_records(registry, repo.path, name, digest, entries)
        results.append(Merged(name, True, tuple(e.platform for e in entries), digest))
    return results


def planned_images(artifacts: Path) -> list[str]:
    """The images of the last `plan` in this stack (artifacts/plan.json), or none."""
    try:
        return list(json.loads((artifacts / "plan.json").read_text())["images"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _merge_model_records(registry: RegistryClient, repository: str, name: str, digest: str,
                         entries: list[multiarch.Entry]) -> None:
    """The index's model record: passed only if every platform's record passed."""
    records = {e.platform: gates.read_record(registry, repository, e.digest, gates.MODEL) for e in entries}
    passed = all(r is not None and r.passed for r in records.values())
    missing = [p for p, r in records.items() if r is None]
    summary = f"missing records for {', '.join(missing)}" if missing else \
        ("all platforms passed" if passed else "a platform failed")
    details = {"drift_status": "per platform",
               "platforms": {p: r.as_json() if r is not None else None for p, r in records.items()}}
    gates.write_record(registry, repository, digest, gates.GateRecord(gates.MODEL, name, passed, summary, details))
