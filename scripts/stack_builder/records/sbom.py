"""SBOMs: a CycloneDX JSON document per platform image, from the package inventory of its manifest record.

The inventory is what the one manifest container listed (dpkg, pip and conda, where present). Each
package becomes a component with its version and package URL; the image itself is the document's
subject component, named by repository and digest. cyclonedx-python-lib writes and validates the
format, so the document is what CycloneDX tools read.
"""
from __future__ import annotations

import logging
from typing import Mapping

LOGGER = logging.getLogger(__name__)

MANAGER_PROPERTY = "stack-builder:package-manager"
# package URL types of the managers the manifest container asks
PURL_TYPES = {"apt": ("deb", "debian"), "pip": ("pypi", None), "conda": ("conda", None)}


def document(packages: Mapping[str, Mapping[str, str]], *, repository: str, digest: str, platform: str,
             tool_version: str = "") -> bytes:
    """The CycloneDX (1.6) JSON of an image whose inventory is ``packages`` ({manager: {name: version}})."""
    # Imported here: the library is large, and only a build that pushes needs it.
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    arch = platform.split("/")[1] if "/" in platform else platform
    bom = Bom()
    root = bom.metadata.component = Component(
        type=ComponentType.CONTAINER, name=repository, version=digest,
        purl=PackageURL("oci", None, repository.rpartition("/")[2], digest,
                        qualifiers={"repository_url": repository, "arch": arch}),
        properties=[Property(name="stack-builder:platform", value=platform)])
    if tool_version:
        bom.metadata.properties.add(Property(name="stack-builder:version", value=tool_version))
    for manager in sorted(packages):
        kind, namespace = PURL_TYPES.get(manager, ("generic", None))
        for name, version in sorted(packages[manager].items()):
            qualifiers = {"arch": arch} if manager == "apt" else None
            bom.components.add(Component(
                type=ComponentType.LIBRARY, name=name, version=version,
                purl=PackageURL(kind, namespace, name, version, qualifiers=qualifiers),
                bom_ref=f"{manager}:{name}@{version}",
                properties=[Property(name=MANAGER_PROPERTY, value=manager)]))
    bom.register_dependency(root, bom.components)
    return JsonV1Dot6(bom).output_as_string(indent=None).encode()


def count(packages: Mapping[str, Mapping[str, str]]) -> int:
    return sum(len(v) for v in packages.values())
