"""gc's keep rules and reachability, on repositories written as data (the registry itself: test_gc_integration)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from stack_builder.release.gc_graph import Node, Repository
from stack_builder.release.gc_rules import KeepRules, Role, TagKind, plan_repository, tag_kind

NOW = datetime(2026, 12, 5, tzinfo=timezone.utc)


def d(name: str) -> str:
    """A digest named after ``name`` (readable in failures)."""
    return "sha256:" + name.encode().hex().ljust(64, "0")[:64]


def image(name: str, *, days_old: int | None = None, branch: str | None = "2026.4-main", blobs: tuple[str, ...] = (),
          subject: str | None = None) -> Node:
    created = (NOW - timedelta(days=days_old)).strftime("%Y-%m-%dT%H:%M:%SZ") if days_old is not None else None
    return Node(d(name), size=100, blobs=tuple((d(b), 1000) for b in blobs) or ((d(name + "-layer"), 1000),),
                subject=subject, created=created, version=branch)


def index(name: str, children: list[str], **labels: object) -> Node:
    base = image(name, **labels)  # type: ignore[arg-type]
    return Node(base.digest, size=200, children=tuple(d(c) for c in children), created=base.created,
                version=base.version)


def repo(tags: dict[str, str], nodes: list[Node], **extra: object) -> Repository:
    return Repository("org/img", {t: d(n) for t, n in tags.items()}, {n.digest: n for n in nodes},
                      **extra)  # type: ignore[arg-type]


RULES = KeepRules(builds=2, days=7, now=NOW)


def deleted(plan_of: Repository, rules: KeepRules = RULES) -> set[str]:
    return {x.digest for x in plan_repository(plan_of, rules).deletions}


@pytest.mark.parametrize(("tag", "kind"), [
    ("stable", TagKind.STABLE), ("2026.4-stable", TagKind.STABLE), ("promotions.stable", TagKind.HISTORY),
    ("promotions.2026.4-stable", TagKind.HISTORY),
    ("sha256-" + "a" * 64 + ".yank", TagKind.REVOCATION), ("sha256-" + "a" * 64, TagKind.REFERRER),
    ("sha256-" + "a" * 64 + ".sig", TagKind.REFERRER), ("2026.4-git-0123456789ab", TagKind.COMMIT),
    ("2026.4-git-0123456789ab-linux-arm64", TagKind.COMMIT), ("2026.4-main", TagKind.OTHER),
    ("2026.4-main-python-3.11.2", TagKind.OTHER), ("2026.4-git-xyz", TagKind.OTHER), ("latest", TagKind.OTHER)])
def test_tags_are_told_apart(tag: str, kind: TagKind) -> None:
    assert tag_kind(tag) is kind


def test_the_newest_builds_of_each_branch_and_the_young_ones_are_kept() -> None:
    nodes = [image("m1", days_old=40), image("m2", days_old=30), image("m3", days_old=20), image("m4", days_old=10),
             image("young", days_old=1), image("f1", days_old=50, branch="2026.4-feature"),
             image("f2", days_old=45, branch="2026.4-feature")]
    tags = {"2026.4-git-00000000000" + str(i): n.digest for i, n in enumerate(nodes)}
    built = Repository("org/img", tags, {n.digest: n for n in nodes})
    gone = {x.digest for x in plan_repository(built, RULES).deletions}
    # main: young (1 day) and m4 are its newest 2; young is also under 7 days. feature keeps its own newest 2.
    assert gone == {d("m1"), d("m2"), d("m3")}
    assert {x.digest for x in plan_repository(built, KeepRules(builds=1, days=0, now=NOW)).deletions} == {
        d("m1"), d("m2"), d("m3"), d("m4"), d("f1")}


def test_a_build_whose_age_or_branch_cannot_be_read_is_kept() -> None:
    built = repo({"2026.4-git-000000000001": "a", "2026.4-git-000000000002": "b"},
                 [image("a", days_old=None), image("b", days_old=90, branch=None)])
    assert deleted(built, KeepRules(builds=1, days=0, now=NOW)) == set()


def test_keep_names_a_digest_that_the_rules_would_delete() -> None:
    built = repo({"2026.4-git-000000000001": "old", "2026.4-git-000000000002": "new"},
                 [image("old", days_old=90), image("new", days_old=80)])
    assert deleted(built, KeepRules(builds=1, days=0, now=NOW)) == {d("old")}
    assert deleted(built, KeepRules(builds=1, days=0, now=NOW, keep=frozenset({d("old")}))) == set()


def test_the_platform_manifests_of_a_kept_index_survive_even_when_another_index_shares_them() -> None:
    # The old build's index is deleted; its amd64 manifest is also in the stable index (reused): it stays.
    built = repo({"stable": "idx-new", "2026.4-git-000000000001": "idx-old"},
                 [index("idx-new", ["amd", "arm-new"]), index("idx-old", ["amd", "arm-old"], days_old=90),
                  image("amd"), image("arm-new"), image("arm-old")])
    plan = plan_repository(built, KeepRules(builds=1, days=0, now=NOW))
    # idx-old is the branch's only build, so it is kept by builds=1 ... unless a newer one exists: add one.
    assert {x.digest for x in plan.deletions} == set()
    built = repo({"stable": "idx-new", "2026.4-git-000000000001": "idx-old", "2026.4-git-000000000002": "idx-2"},
                 [index("idx-new", ["amd", "arm-new"]), index("idx-old", ["amd", "arm-old"], days_old=90),
                  index("idx-2", ["amd", "arm-new"], days_old=10), image("amd"), image("arm-new"), image("arm-old")])
    plan = plan_repository(built, KeepRules(builds=1, days=0, now=NOW))
    assert {x.digest for x in plan.deletions} == {d("idx-old"), d("arm-old")}
    roles = {x.digest: x.role for x in plan.deletions}
    assert roles == {d("idx-old"): Role.TOP, d("arm-old"): Role.PLATFORM}


def test_referrers_follow_their_subject() -> None:
    keep, drop = image("keep", days_old=1), image("drop", days_old=90)
    sbom_kept, sbom_gone = image("sbom-k", subject=keep.digest), image("sbom-d", subject=drop.digest)
    # A referrers index (the fallback tag) has no subject field: its tag names the subject.
    fallback = Node(d("fallback"), children=(sbom_gone.digest,), subject=drop.digest)
    built = repo({"2026.4-git-000000000001": "keep", "2026.4-git-000000000002": "drop",
                  "sha256-" + drop.digest[7:]: "fallback"}, [keep, drop, sbom_kept, sbom_gone, fallback])
    plan = plan_repository(built, KeepRules(builds=1, days=7, now=NOW))
    assert {x.digest for x in plan.deletions} == {drop.digest, sbom_gone.digest, fallback.digest}
    assert {x.digest for x in plan.deletions if x.role is Role.REFERRER} == {sbom_gone.digest, fallback.digest}
    assert plan.kept[sbom_kept.digest].startswith("a referrer of")


def test_what_a_promotion_history_names_and_revocations_are_kept() -> None:
    rollback_target = image("old-stable", days_old=400)
    history = image("history")
    yank = image("yank", subject=d("yanked"))  # its subject was deleted by the yank
    built = repo({"promotions.2026.3-stable": "history", "2026.4-git-000000000001": "old-stable",
                  "2026.4-git-000000000002": "newer", "sha256-" + d("yanked")[7:] + ".yank": "yank"},
                 [rollback_target, history, yank, image("newer", days_old=300)],
                 history={"promotions.2026.3-stable": (rollback_target.digest,)})
    assert deleted(built, KeepRules(builds=1, days=0, now=NOW)) == set()


def test_untagged_package_versions_on_ghcr_go_unless_young_or_reached() -> None:
    kept = image("kept", days_old=1)
    attestation = image("attestation", subject=kept.digest)  # untagged, but refers to a kept image (snok #63)
    built = repo({"2026.4-main": "kept"}, [kept, attestation, image("orphan-old"), image("orphan-young")],
                 versions={d("orphan-old"): "2026-01-01T00:00:00Z", d("orphan-young"): "2026-12-04T00:00:00Z",
                           attestation.digest: "2026-01-01T00:00:00Z"})
    assert deleted(built) == {d("orphan-old")}


def test_bytes_freed_counts_only_blobs_nothing_kept_uses() -> None:
    shared, own = "shared-layer", "own-layer"
    built = repo({"2026.4-git-000000000001": "old", "2026.4-git-000000000002": "new"},
                 [image("old", days_old=90, blobs=(shared, own)), image("new", days_old=80, blobs=(shared,))])
    plan = plan_repository(built, KeepRules(builds=1, days=0, now=NOW))
    assert plan.bytes_freed == 100 + 1000  # the old manifest and its own layer; the shared layer stays


def test_keep_commit_keeps_every_per_commit_tag_of_that_commit() -> None:
    built = repo({"2026.4-git-0123456789ab": "pr-index", "2026.4-git-0123456789ab-linux-arm64": "pr-arm",
                  "2026.4-git-000000000002": "new"},
                 [image("pr-index", days_old=90), image("pr-arm", days_old=90), image("new", days_old=80)])
    rules = KeepRules(builds=1, days=0, now=NOW)
    assert deleted(built, rules) == {d("pr-index"), d("pr-arm")}
    assert deleted(built, KeepRules(builds=1, days=0, now=NOW, keep_commits=frozenset({"0123456789ab"}))) == set()
