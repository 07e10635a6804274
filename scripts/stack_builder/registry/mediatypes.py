"""The OCI and Docker media types we read and write, in one place."""
from __future__ import annotations

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# Every manifest and index type, indexes first: a retag must get the bytes exactly as stored.
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join(MANIFEST_TYPES)

GATE_ARTIFACT = "application/vnd.stack-builder.gate.v1+json"
SBOM_ARTIFACT = "application/vnd.cyclonedx+json"
REVOCATION_ARTIFACT = "application/vnd.stack-builder.revocation.v1+json"
HISTORY_ARTIFACT = "application/vnd.stack-builder.promotions.v1+json"
