"""Which names get a local stand-in: official Docker Hub names only, spelled any way Docker accepts."""
from __future__ import annotations

import pytest

from stack_builder.engine import local_bases


@pytest.mark.parametrize(("name", "local"), [
    ("debian:bookworm-slim", "localhost/host-ca/debian:bookworm-slim"),
    ("docker.io/library/debian:bookworm-slim", "localhost/host-ca/debian:bookworm-slim"),
    ("library/debian:bookworm", "localhost/host-ca/debian:bookworm"),
    ("index.docker.io/library/debian:bookworm", "localhost/host-ca/debian:bookworm"),
    ("debian", "localhost/host-ca/debian:latest"),
    ("jupyter/base-notebook:2024", "localhost/host-ca/jupyter/base-notebook:2024"),
    ("ghcr.io/org/base:1", None),  # another registry's image is never stood in for
    ("127.0.0.1:5000/org/base:1", None),
    ("localhost/host-ca/debian:bookworm-slim", None),  # already local
    ("debian@sha256:" + "a" * 64, None),  # pinned by digest: exactly that image
    ("debian:${SUITE}", None),
    ("", None),
])
def test_local_name(name: str, local: str | None) -> None:
    assert local_bases.local_name(name) == local


def test_no_engine_no_stand_in() -> None:
    assert local_bases.find(None, "debian:bookworm-slim", "linux/amd64") is None
