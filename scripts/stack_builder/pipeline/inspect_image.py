"""`manifest`: the manifest record and wiki page of an image that is already in the registry."""
from __future__ import annotations

from typing import Any

from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine import images
from stack_builder.errors import StackError
from stack_builder.plan.revision import read_revision
from stack_builder.records import manifests
from stack_builder.records.files import utc_now
from stack_builder.records.wiki import Wiki
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.credentials import find_credentials
from stack_builder.spec.references import check_tag


def record_manifest(config: Config, image: str, tag: str) -> tuple[dict[str, Any], str]:
    """Pull ``image:tag`` by digest, collect its manifest, save the record and the page; return both."""
    spec = config.spec
    if not image or not tag:
        raise StackError("give both --image NAME and --tag TAG")
    spec.require([image])
    check_tag(tag)
    repo = spec.images[image].repository.on(config.registry)
    credentials = find_credentials(config.registry)
    digest = RegistryClient(config.registry, credentials).manifest_digest(repo.path, tag)
    if digest is None:
        raise StackError(f"{repo}:{tag} is not in registry {config.registry}: check the tag (build pushes "
                         f"<prefix>-<branch>, e.g. {spec.tag_prefix}-main)")
    engine = engine_client.connect()
    images.pull(engine, str(repo), digest, auth=credentials.auth_config() if credentials else None)
    ref = f"{repo}@{digest}"
    found = images.find(engine, ref)
    labels = found.labels if found else {}
    commit = labels.get("org.opencontainers.image.revision", "unknown")
    source = labels.get("org.opencontainers.image.source")
    revision = read_revision(config.stack_dir)
    facts = manifests.BuildFacts(
        image=image, tag=tag, ref=f"{repo}:{tag}", digest=digest, commit=commit,
        branch=revision.branch if commit == revision.commit else "",
        commit_url=f"{source}/commit/{commit}" if source and commit != "unknown" else None,
        parent=labels.get("org.opencontainers.image.base.name"), platforms=spec.images[image].platforms)
    commands = {key: spec.all_info_cmds[key] for key in spec.images[image].info_cmds}
    record = manifests.collect(engine, ref, facts, commands)
    manifests.save(record, [config.artifacts / "manifests"])
    pages = Wiki(config.wiki_dir)
    page = pages.add_manifest(record)  # "changes since" the previous record of the image in the wiki's _data
    pages.record_build({"commit": commit, "commit_url": facts.commit_url, "branch": facts.branch, "tag": tag,
                        "time": utc_now(), "kind": "build", "images": [{"name": image, "tag": tag, "page": page}]})
    pages.render(spec)
    return record, page
