"""`manifest`: the manifest record and wiki page of an image already in the registry."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.published.manifest import record_manifest


def main(image: str, tag: str, registry: str) -> bool | Failed:
    def work() -> bool:
        record, page = record_manifest(make_config(registry=registry), image, tag)
        print(f"manifest of {record['ref']} ({record['digest']}): wiki/{page}.md, artifacts/manifests/{page}.json")
        return True

    return run_task(work)
