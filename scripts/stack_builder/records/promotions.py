"""Promotion history, kept in the registry: every move of a stable tag, so a rollback can undo the last one.

Each repository holds one small OCI artifact per stable tag, tagged ``promotions.<target>`` (e.g.
``promotions.stable``), which lists the moves of that tag: which promotion (an id shared by
every image moved together), the digest before and after, when and by whom. It lives beside the
images, outside any runner, so a rollback works from any machine.

The list is the manifest's own annotation (``HISTORY_ANNOTATION``), its config and layer the empty
descriptor: adding a move is one manifest written, with no blob to upload. A history written by
stack-builder 0.2 or earlier keeps the list in a layer blob: it is read as well, and written in the new
form on its next move.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from stack_builder.errors import RegistryError
from stack_builder.records.runs import RunKind
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.mediatypes import HISTORY_ARTIFACT, OCI_EMPTY, OCI_MANIFEST

LOGGER = logging.getLogger(__name__)

PROMOTION, ROLLBACK = RunKind.PROMOTION, RunKind.ROLLBACK
MAX_ENTRIES = 200  # moves kept per tag: about 70 kB of manifest, far below what registries take (4 MiB)
HISTORY_ANNOTATION = "io.stack-builder.promotions"
EMPTY = b"{}"  # the OCI empty descriptor's content


@dataclass(frozen=True)
class Entry:
    id: str  # the promotion (or rollback) this move was part of
    kind: RunKind  # PROMOTION or ROLLBACK; stored as its plain value
    time: str
    by: str
    source: str  # the tag promoted, or the promotion a rollback undid
    before: str | None  # the target's digest before the move (None: the tag did not exist)
    after: str
    undoes: str | None = None  # for a rollback: the id of the promotion it undid
    stamp: int = 0  # nanoseconds since the epoch: orders promotions made within the same second


def history_tag(target: str) -> str:
    return f"promotions.{target}"


def read(registry: RegistryClient, repository: str, target: str) -> list[Entry]:
    """The moves of ``repository:target``, oldest first (empty when none was recorded)."""
    manifest = registry.get_manifest(repository, history_tag(target))
    if manifest is None:
        return []
    try:
        parsed = json.loads(manifest.body)
        inline = (parsed.get("annotations") or {}).get(HISTORY_ANNOTATION)
        document = json.loads(inline) if inline is not None else \
            json.loads(registry.get_blob(repository, str(parsed["layers"][0]["digest"])))  # 0.2's form
        items = document["entries"]
        return [Entry(**{**{k: item[k] for k in Entry.__dataclass_fields__ if k in item},
                         "kind": RunKind(item["kind"])}) for item in items]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise RegistryError(f"the promotion history {repository}:{history_tag(target)} is unreadable "
                            f"({type(exc).__name__}): fix or delete that tag") from None


def append(registry: RegistryClient, repository: str, target: str, entry: Entry) -> None:
    entries = [*read(registry, repository, target), entry][-MAX_ENTRIES:]
    listed = json.dumps({"target": target, "entries": [{**asdict(e), "kind": e.kind.value} for e in entries]},
                        sort_keys=True)
    empty = {"mediaType": OCI_EMPTY, "digest": registry.upload_blob(repository, EMPTY), "size": len(EMPTY)}
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": HISTORY_ARTIFACT, "config": empty,
        "layers": [empty],
        "annotations": {"org.opencontainers.image.created": entry.time, HISTORY_ANNOTATION: listed},
    }
    registry.put_manifest(repository, history_tag(target), json.dumps(manifest).encode(), OCI_MANIFEST)
    LOGGER.info("%s:%s history: %s %s %s -> %s", repository, target, entry.kind, entry.id,
                (entry.before or "none")[:19], entry.after[:19])


def last_live(entries: list[Entry]) -> Entry | None:
    """The newest promotion not rolled back yet. A rollback undoes the newest live promotion of its id, so the
    same digests promoted again after a rollback (same id) are live again."""
    live: list[Entry] = []
    for entry in entries:
        if entry.kind is RunKind.PROMOTION:
            live.append(entry)
        elif entry.undoes:
            for index in range(len(live) - 1, -1, -1):
                if live[index].id == entry.undoes:
                    del live[index]
                    break
    return live[-1] if live else None
