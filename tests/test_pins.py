"""Names in a Dockerfile, pinned: how an image name splits, and how the pinned Dockerfile reads."""
from __future__ import annotations

import pytest

from stack_builder.pipeline import pins


@pytest.mark.parametrize(("name", "parts"), [
    ("debian:bookworm-slim", (pins.DOCKER_HUB, "library/debian", "bookworm-slim")),
    ("python", (pins.DOCKER_HUB, "library/python", "latest")),
    ("docker/dockerfile:1.4", (pins.DOCKER_HUB, "docker/dockerfile", "1.4")),
    ("127.0.0.1:5000/tools/tool:1", ("127.0.0.1:5000", "tools/tool", "1")),
    ("ghcr.io/org/img", ("ghcr.io", "org/img", "latest")),
    ("localhost/x@sha256:" + "a" * 64, ("localhost", "x", "sha256:" + "a" * 64)),
])
def test_an_image_name_splits_into_registry_repository_and_reference(name: str, parts: tuple[str, str, str]) -> None:
    assert pins.split_name(name) == parts


def test_the_pinned_dockerfile_names_each_resolved_image_and_frontend_by_digest() -> None:
    digest = "sha256:" + "b" * 64
    text = ("# syntax=docker/dockerfile:1.4\nARG BASE_IMAGE\nFROM --platform=linux/amd64 ghcr.io/t/tool:1 AS tool\n"
            "FROM ${BASE_IMAGE}\nCOPY --from=tool /x /x\n# FROM ghcr.io/t/tool:1 in a comment stays\n")
    pinned = pins._rewritten(text, {-1: ("docker/dockerfile:1.4", f"docker/dockerfile:1.4@{digest}"),
                                    2: ("ghcr.io/t/tool:1", f"ghcr.io/t/tool:1@{digest}")})
    assert pinned.splitlines() == [
        f"# syntax=docker/dockerfile:1.4@{digest}", "ARG BASE_IMAGE",
        f"FROM --platform=linux/amd64 ghcr.io/t/tool:1@{digest} AS tool", "FROM ${BASE_IMAGE}", "COPY --from=tool /x /x",
        "# FROM ghcr.io/t/tool:1 in a comment stays"]


def test_the_names_a_build_uses_are_read_with_its_args_and_directives() -> None:
    text = ("# escape=\\\n# syntax=docker/dockerfile:1.7\nARG PY=3.12\nARG BASE_IMAGE\nARG BASE_TAG\n"
            "FROM python:${PY} AS deps\nFROM deps AS again\nFROM ghcr.io/o/base:${BASE_TAG} AS datahub\n"
            "FROM ${BASE_IMAGE}\nFROM scratch\n")
    assert pins._named(text, {"PY": "3.11"}) == [(-2, "docker/dockerfile:1.7"), (5, "python:3.11")]
    assert pins._named(text, {}) == [(-2, "docker/dockerfile:1.7"), (5, "python:3.12")]
    # A directive after an instruction is a comment, not a frontend.
    assert pins._named("FROM a\n# syntax=docker/dockerfile:1\n", {}) == [(0, "a")]


def test_a_pinned_line_built_from_args_names_the_image_the_args_gave() -> None:
    digest = "sha256:" + "c" * 64
    text = "ARG PY=3.12\nFROM python:${PY} AS deps\nRUN true\n"
    assert pins._rewritten(text, {1: ("python:3.11", f"python:3.11@{digest}")}).splitlines()[1] == \
        f"FROM python:3.11@{digest} AS deps"
