"""A stack's history written straight into a registry, fast: tiny synthetic images (a config and one layer each,
one or two platforms, an SBOM per platform through the referrers tag, a signature-like artifact per build) under
per-commit and branch tags, promotions with their history, rollbacks and yanks, as the builder writes them. For
gc's property test and benchmark; ``Model`` is what was done, kept independently of the registry."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from stack_builder.records import promotions, revocations
from stack_builder.records.runs import RunKind
from stack_builder.registry import referrers
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import OCI_INDEX, OCI_MANIFEST, SBOM_ARTIFACT

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)
PREFIX = "2024.1"


@dataclass
class Build:
    stem: str
    branch: str
    created: datetime
    digest: str
    tags: list[str]


@dataclass
class Model:
    """What the test did, independently of gc: the builds, where each tag points, what the histories name."""

    repository: str
    builds: list[Build] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # digests named in promotions.<PREFIX>-stable
    yanked: set[str] = field(default_factory=set)


def image(client: RegistryClient, repository: str, branch: str, created: datetime, arch: str,
          layer_bytes: int = 16, shared: bytes = b"") -> str:
    """One platform image: a unique layer of ``layer_bytes`` random bytes, and a ``shared`` one when given."""
    layers = [gzip.compress(os.urandom(layer_bytes), mtime=0)]  # random: it compresses to its own size
    if shared:
        layers.insert(0, shared)
    layer = layers[-1]
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Labels": {
        "org.opencontainers.image.created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.version": f"{PREFIX}-{branch}"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest()
                                                  for b in layers]}
    }).encode()
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                  "digest": client.upload_blob(repository, config), "size": len(config)},
                       "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                   "digest": client.upload_blob(repository, b), "size": len(b)} for b in layers]
                       }).encode()
    digest = client.put_manifest(repository, "sha256:" + hashlib.sha256(body).hexdigest(), body, OCI_MANIFEST)
    referrers.attach(client, repository, digest, SBOM_ARTIFACT, json.dumps({"arch": arch}).encode())
    return digest


def build(client: RegistryClient, model: Model, branch: str, days_old: int, platforms: int, *, layer_bytes: int = 16,
          shared: bytes = b"", now: datetime = NOW) -> None:
    created = now - timedelta(days=days_old, seconds=len(model.builds))
    children = [image(client, model.repository, branch, created, arch, layer_bytes, shared)
                for arch in ("amd64", "arm64")[:platforms]]
    stem = f"{PREFIX}-git-{uuid.uuid4().hex[:12]}"
    tags = [stem]
    if platforms == 1:
        digest = children[0]
    else:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d, "size": len(client.get_manifest(model.repository, d).body),  # type: ignore[union-attr]
             "platform": {"os": "linux", "architecture": arch}} for d, arch in zip(children, ("amd64", "arm64"))]
        }).encode()
        digest = client.put_manifest(model.repository, stem, body, OCI_INDEX)
        for child, arch in zip(children, ("amd64", "arm64")):
            put_tag(client, model, f"{stem}-linux-{arch}", child)
            tags.append(f"{stem}-linux-{arch}")
    for tag in (stem, f"{PREFIX}-{branch}"):
        put_tag(client, model, tag, digest)
    referrers.attach(client, model.repository, digest, "application/vnd.dev.cosign.simplesigning.v1+json",
                     b"{}", tag=f"{digest.replace(':', '-')}.sig")
    model.builds.append(Build(stem, branch, created, digest, tags))


def put_tag(client: RegistryClient, model: Model, tag: str, digest: str) -> None:
    found = client.get_manifest(model.repository, digest)
    assert found is not None
    client.put_manifest(model.repository, tag, found.body, found.media_type)
    model.tags[tag] = digest


def promote(client: RegistryClient, model: Model, *, back: bool) -> None:
    target = f"{PREFIX}-stable"
    entries = promotions.read(client, model.repository, target)
    if back:
        if not entries or not entries[-1].before or entries[-1].before in model.yanked:
            return
        after, kind = entries[-1].before, RunKind.ROLLBACK
    else:
        after, kind = model.tags.get(f"{PREFIX}-main", ""), RunKind.PROMOTION
        if not after:
            return
    before = model.tags.get(target)
    put_tag(client, model, target, after)
    promotions.append(client, model.repository, target, promotions.Entry(
        id=uuid.uuid4().hex, kind=kind, time=NOW.isoformat(), by="test", source=f"{PREFIX}-main", before=before,
        after=after))
    model.history += [d for d in (before, after) if d]


def yank(client: RegistryClient, model: Model, pick: int) -> None:
    live = [b for b in model.builds if b.digest not in model.yanked]
    if not live:
        return
    victim = live[pick % len(live)]
    revocations.write(client, revocations.Revocation("img", model.repository, victim.digest, "test", NOW.isoformat(),
                                                     "test"))
    client.delete_manifest(model.repository, victim.digest)
    model.yanked.add(victim.digest)
    model.tags = {t: d for t, d in model.tags.items() if d != victim.digest}
