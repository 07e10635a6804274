"""`manifest`: the manifest record and wiki page of an image that is already in the registry."""
from __future__ import annotations

import logging
from typing import Any

from stack_builder.checks import inventory
from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine import images
from stack_builder.plan.revision import read_revision
from stack_builder.published.image import PublishedImage, find_published
from stack_builder.records import manifests
from stack_builder.records.files import utc_now
from stack_builder.records.report import read_report
from stack_builder.records.runs import RunKind
from stack_builder.records.wiki import Wiki
from stack_builder.version import BUILDER_LABEL

LOGGER = logging.getLogger(__name__)


def record_manifest(config: Config, image: str, tag: str) -> tuple[dict[str, Any], str]:
    """Pull ``image:tag`` by digest, collect its manifest, save the record and the page; return both."""
    published = find_published(config, image, tag)
    spec = config.spec
    engine = engine_client.connect()
    credentials = published.registry.credentials
    images.pull(engine, str(published.repository), published.digest,
                auth=credentials.auth_config() if credentials else None)
    facts = _facts(config, published, images.find(engine, published.reference))
    commands = {key: spec.all_info_cmds[key] for key in spec.images[image].info_cmds}
    record = inventory.collect(engine, published.reference, facts, commands)
    manifests.save(record, [config.artifacts / "manifests"])
    pages = Wiki(config.wiki_dir)
    page = pages.add_manifest(record)  # "changes since" the previous record of the image in the wiki's _data
    pages.record_build({"commit": facts.commit, "commit_url": facts.commit_url, "branch": facts.branch, "tag": tag,
                        "time": utc_now(), "kind": RunKind.BUILD.value,
                        "images": [{"name": image, "tag": tag, "page": page}]})
    pages.render(spec)
    LOGGER.info("manifest of %s: %s", published.reference, page)
    return record, page


def _facts(config: Config, published: PublishedImage, found: images.LocalImage | None) -> manifests.BuildFacts:
    """What the image's OCI labels say about its build; the branch only when the checkout is at its commit."""
    labels = found.labels if found else {}
    commit = labels.get("org.opencontainers.image.revision", "unknown")
    source = labels.get("org.opencontainers.image.source")
    revision = read_revision(config.stack_dir)
    return manifests.BuildFacts(
        image=published.name, tag=published.tag, ref=f"{published.repository}:{published.tag}",
        digest=published.digest, commit=commit, branch=revision.branch if commit == revision.commit else "",
        commit_url=f"{source}/commit/{commit}" if source and commit != "unknown" else None,
        parent=labels.get("org.opencontainers.image.base.name"),
        platforms=config.spec.images[published.name].platforms, builder=labels.get(BUILDER_LABEL, ""),
        engines=_engines(config, published))


def _engines(config: Config, published: PublishedImage) -> dict[str, str]:
    """Which engine built each platform, as the run's report says, when that run published this digest."""
    report = read_report(config.artifacts / "build-report.json", what="the run's report", default={}) or {}
    result = (report.get("images") or {}).get(published.name) or {}
    if result.get("digest") != published.digest:
        return {}
    return {str(p): str(e) for p, e in (result.get("engines") or {}).items()}
