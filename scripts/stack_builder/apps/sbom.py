"""`sbom`: write the CycloneDX SBOM of an image in the registry to a file."""
from __future__ import annotations

from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import make_config
from stack_builder.published.sbom import fetch_sbom


def main(image: str, tag: str, platform: str, output: str, registry: str) -> bool | Failed:
    def work() -> bool:
        found = fetch_sbom(make_config(registry=registry), image, tag, platform, output)
        print(f"SBOM of {found.reference} ({found.platform}): {found.components} components, "
              f"artifact {found.artifact} -> {found.path}")
        return True

    return run_task(work)
