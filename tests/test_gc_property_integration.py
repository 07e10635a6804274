"""A property of `gc`, on the real registry: after any sequence of builds, promotions, rollbacks and yanks, gc
deletes nothing that a keep rule names. Hypothesis draws the sequences and the rules; each example writes a
small image's history into a repository of its own (tests/synthetic_builds.py), then runs gc's plan and apply,
and checks every tag the rules keep against the test's own record of what was done.
"""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stack_builder.records import revocations
from stack_builder.registry import referrers
from stack_builder.registry.client import RegistryClient
from stack_builder.release import gc
from stack_builder.release.gc_rules import KeepRules
from stacks import running_registry
from synthetic_builds import NOW, PREFIX, Model, build, promote, yank

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry_host(registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(registry_binary, tmp_path_factory.mktemp("gc-property")) as host:
        yield host


# Builds mostly on main and mostly old (so the rules have something to let go), promotions often (so histories
# name digests no tag keeps), a yank now and then.
OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("build"), st.sampled_from(["main", "main", "feat"]), st.integers(0, 60), st.integers(1, 2)),
    st.tuples(st.just("promote"), st.sampled_from([False, False, True]), st.just(0), st.just(0)),
    st.tuples(st.just("yank"), st.integers(0, 20), st.just(0), st.just(0))), min_size=1, max_size=8)


def kept_by_the_rules(model: Model, rules: KeepRules) -> set[str]:
    """The tags the keep rules name, worked out from what the test did (not from the registry)."""
    named = {t for t in model.tags if not t.startswith(f"{PREFIX}-git-")}  # branch, stable and other tags
    for branch in ("main", "feat"):
        builds = sorted((b for b in model.builds if b.branch == branch and b.digest not in model.yanked),
                        key=lambda b: b.created, reverse=True)
        for chosen in builds[:rules.builds] + [b for b in builds if NOW - b.created < timedelta(days=rules.days)]:
            named.update(t for t in chosen.tags if t in model.tags)
    return named


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS, builds=st.integers(1, 2), days=st.sampled_from([0, 0, 10, 30]))
# Always tried as well: the old stable a rollback needs, named by the history alone (older than every rule).
@example(operations=[("build", "main", 60, 2), ("promote", False, 0, 0), ("build", "main", 50, 1),
                     ("build", "main", 40, 2), ("promote", False, 0, 0), ("build", "feat", 30, 1)], builds=1, days=0)
def test_gc_never_breaks_what_the_keep_rules_name(registry_host: str, operations: list[tuple[object, ...]],
                                                  builds: int, days: int) -> None:
    client = RegistryClient(registry_host)
    model = Model(f"prop/{uuid.uuid4().hex[:10]}")
    for name, first, second, third in operations:
        if name == "build":
            build(client, model, str(first), int(str(second)), int(str(third)))
        elif name == "promote":
            promote(client, model, back=bool(first))
        else:
            yank(client, model, int(str(first)))
    if not model.tags:
        return
    rules = KeepRules(builds=builds, days=days, now=NOW)
    plan = gc.make_plan(client, [model.repository], rules, NOW.isoformat())
    gc.apply(client, plan)

    left = client.tags(model.repository)
    for tag in kept_by_the_rules(model, rules):
        assert tag in left, (tag, plan.lines())
        assert client.manifest_digest(model.repository, tag) == model.tags[tag]
    for digest in set(model.history) - model.yanked:  # a rollback may need any of them
        assert client.get_manifest(model.repository, digest) is not None, digest
    for digest in model.yanked:
        assert revocations.read(client, model.repository, digest) is not None  # revocations outlive the image
    checked = gc.verify(client, [model.repository])  # every tag left: manifests, platforms, referrers, blobs
    assert checked.problems == [], checked.problems
    for digest in {model.tags[t] for t in left if t in model.tags}:
        assert referrers.find(client, model.repository, digest), digest  # its SBOM or signature survived


def test_the_pinned_history_loses_exactly_the_build_no_rule_keeps(registry_host: str) -> None:
    """The property's pinned example, with what gc must delete said outright: a gc that deletes nothing (or
    everything) fails here even where the property holds."""
    client = RegistryClient(registry_host)
    model = Model(f"prop/{uuid.uuid4().hex[:10]}")
    for days_old, platforms in ((60, 2), (50, 1), (40, 2)):
        build(client, model, "main", days_old, platforms)
        if days_old != 50:
            promote(client, model, back=False)
    plan = gc.make_plan(client, [model.repository], KeepRules(builds=1, days=0, now=NOW), NOW.isoformat())
    gc.apply(client, plan)
    first, second, third = model.builds
    assert client.get_manifest(model.repository, second.digest) is None  # neither newest, young, nor promoted
    assert second.stem not in client.tags(model.repository)
    assert client.get_manifest(model.repository, first.digest) is not None  # in the history
    assert client.get_manifest(model.repository, third.digest) is not None  # stable and newest
    assert {d.digest for d in plan.deletions} >= {second.digest}
