"""Docker's reference grammar, branch names made into tags, registry hosts."""
from __future__ import annotations

import pytest

from stack_builder.errors import StackError
from stack_builder.spec.references import split_reference, TAG_RE, check_registry, check_tag, parse_repository, sanitize_branch
from stack_builder.registry.client import is_loopback


@pytest.mark.parametrize("branch,tag", [
    ("main", "2024.1-main"),
    ("feat-x", "2024.1-feat-x"),
    ("release-2.0_rc1", "2024.1-release-2.0_rc1"),
    # Sanitised names keep a hash of the whole name: feat/x and feat-x never share a tag.
    ("feat/x", "2024.1-feat-x-79b4cc55"),
    ("dependabot/pip/numpy-2.0", "2024.1-dependabot-pip-numpy-2.0-34f6d826"),
    ("weird branch!!name", "2024.1-weird-branch-name-0f85de86"),
    ("////", "2024.1-unknown-0ea28b45"),
    # Names that would make a tag only the tool may make are hashed too.
    ("stable", "2024.1-stable-f379ccb9"),
    ("my-Stable", "2024.1-my-Stable-bdb1feaa"),
    ("git-0123456789ab", "2024.1-git-0123456789ab-1f8925c2"),
    ("main-linux-arm64", "2024.1-main-linux-arm64-0c7ec748"),
    ("linux-amd64", "2024.1-linux-amd64-abb35c61"),
    ("x-linux-arm-v7", "2024.1-x-linux-arm-v7-1e0608fa"),
    ("release-rollback", "2024.1-release-rollback-4ab73b59"),
])
def test_branch_becomes_valid_tag(branch: str, tag: str) -> None:
    assert sanitize_branch(branch, prefix="2024.1") == tag


def test_no_branch_tag_is_reserved_or_shared() -> None:
    tags = {sanitize_branch(b, prefix="2024.1") for b in ("feat/x", "feat-x", "feat_x", "feat.x", "feat--x")}
    assert len(tags) == 5
    for branch in ("stable", "2024.1-stable", "git-0123456789ab", "main-linux-amd64", "x-yanked"):
        tag = sanitize_branch(branch, prefix="2024.1")
        assert not tag.endswith("stable") and not tag.endswith("-linux-amd64") and not tag.endswith("yanked")


def test_long_branches_are_cut_to_128_and_stay_distinct() -> None:
    a = sanitize_branch("x" * 300 + "a", prefix="2024.1")
    b = sanitize_branch("x" * 300 + "b", prefix="2024.1")
    assert len(a) <= 128 and len(b) <= 128
    assert a != b
    assert TAG_RE.match(a) and TAG_RE.match(b)


@pytest.mark.parametrize("bad", ["", "-x", ".x", "a" * 129, "a:b", "a/b", "a b"])
def test_invalid_tags_are_refused(bad: str) -> None:
    with pytest.raises(StackError, match="not a valid Docker tag"):
        check_tag(bad)


def test_repository_host_is_split_like_docker() -> None:
    assert parse_repository("ghcr.io/org/img").host == "ghcr.io"
    assert parse_repository("localhost/img").host == "localhost"
    assert parse_repository("127.0.0.1:5000/a/b").host == "127.0.0.1:5000"
    assert parse_repository("org/img").host is None
    assert str(parse_repository("org/img").on("127.0.0.1:5000")) == "127.0.0.1:5000/org/img"


@pytest.mark.parametrize("bad", ["Org/img", "org/img:tag", "org//img", "org/img@sha256:00", "-x/y"])
def test_invalid_repositories_are_refused(bad: str) -> None:
    with pytest.raises(StackError):
        parse_repository(bad)


def test_registry_values() -> None:
    assert check_registry("ghcr.io") == "ghcr.io"
    assert check_registry("127.0.0.1:5000") == "127.0.0.1:5000"
    for bad in ("https://ghcr.io", "ghcr.io/org", "a b", ""):
        with pytest.raises(StackError, match="HOST"):
            check_registry(bad)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost:5000") and is_loopback("[::1]:5000")
    assert not is_loopback("ghcr.io") and not is_loopback("10.0.0.1:5000")


@pytest.mark.parametrize("name,expected", [
    ("stack-test/busybox:2", ("stack-test/busybox", "2")),
    ("ns/img", ("ns/img", "latest")),
    ("ns/img@sha256:" + "a" * 64, ("ns/img", "sha256:" + "a" * 64)),
    ("ns/img:1@sha256:" + "b" * 64, ("ns/img", "sha256:" + "b" * 64)),
])
def test_split_reference(name: str, expected: tuple[str, str]) -> None:
    assert split_reference(name) == expected
