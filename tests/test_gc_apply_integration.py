"""gc's apply and check when things go wrong, on the real registry (histories written by tests/synthetic_builds.py):
an apply that fails part way, a kept manifest that vanishes behind gc's back, an index broken before gc ran."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from stack_builder.errors import RegistryError, StackError
from stack_builder.registry.client import RegistryClient
from stack_builder.release import gc
from stack_builder.release.gc_rules import KeepRules, Role
from stacks import running_registry
from synthetic_builds import NOW, Model, build, promote

pytestmark = pytest.mark.integration
RULES = KeepRules(builds=1, days=0, now=NOW)


@pytest.fixture(scope="module")
def host(registry_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_registry(registry_binary, tmp_path_factory.mktemp("gc-apply")) as found:
        yield found


def history(client: RegistryClient) -> Model:
    """Four two-platform builds of main, the first promoted: the second and third are what gc deletes."""
    model = Model(f"apply/{uuid.uuid4().hex[:10]}")
    for number, days_old in enumerate((90, 80, 70, 60)):
        build(client, model, "main", days_old, 2)
        if number == 0:
            promote(client, model, back=False)
    return model


def test_an_apply_that_fails_part_way_says_so_and_the_next_plan_finishes_it(host: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = RegistryClient(host)
    model = history(client)
    plan = gc.make_plan(client, [model.repository], RULES, NOW.isoformat())
    assert len(plan.deletions) > 6
    real, calls = client.delete_manifest, []

    def failing(repository: str, digest: str) -> bool:
        calls.append(digest)
        if len(calls) > 5:
            raise RegistryError("the registry went away")
        return real(repository, digest)

    monkeypatch.setattr(client, "delete_manifest", failing)
    with pytest.raises(StackError, match=rf"gc stopped after deleting 5 of {len(plan.deletions)} manifest"):
        gc.apply(client, plan)
    monkeypatch.setattr(client, "delete_manifest", real)
    # Referrers went first: no kept tag broke, and the next plan (reading what is left) finishes the job.
    assert {d.role for d in plan.deletions if d.digest in calls[:5]} == {Role.REFERRER}
    again = gc.make_plan(client, [model.repository], RULES, NOW.isoformat())
    assert {d.digest for d in again.deletions} == {d.digest for d in plan.deletions} - set(calls[:5])
    assert gc.apply(client, again) == len(again.deletions)
    assert gc.verify(client, [model.repository], again).problems == []
    for gone in model.builds[1:3]:
        assert client.get_manifest(model.repository, gone.digest) is None


def test_the_check_after_gc_names_a_kept_manifest_that_vanished(host: str) -> None:
    client = RegistryClient(host)
    model = history(client)
    plan = gc.make_plan(client, [model.repository], RULES, NOW.isoformat())
    gc.apply(client, plan)
    assert gc.verify(client, [model.repository], plan).problems == []
    first = model.builds[0]  # the old stable: kept by the stable tag and the history
    client.delete_manifest(model.repository, first.digest)  # behind gc's back
    problems = gc.verify(client, [model.repository], plan).problems
    assert any(f"{model.repository}:2024.1-stable was kept at {first.digest[:19]} but now is gone" in p
               for p in problems), problems
    assert any(f"{model.repository}@{first.digest[:19]} was kept" in p for p in problems), problems


def test_an_index_broken_before_gc_is_deleted_when_unkept_and_named_when_kept(host: str) -> None:
    client = RegistryClient(host)
    model = history(client)
    unkept, kept = model.builds[1], model.builds[-1]
    for victim in (unkept, kept):  # one platform manifest of each index deleted by hand (or by a stopped gc)
        child = next(d for t, d in model.tags.items() if t == f"{victim.stem}-linux-arm64")
        client.delete_manifest(model.repository, child)
    plan = gc.make_plan(client, [model.repository], RULES, NOW.isoformat())
    assert unkept.digest in {d.digest for d in plan.deletions}
    broken = plan.repositories[0].broken
    assert len(broken) == 1 and any("no longer serves it" in line for line in plan.lines())
    gc.apply(client, plan)
    assert client.get_manifest(model.repository, unkept.digest) is None
    problems = gc.verify(client, [model.repository], plan).problems
    assert problems == [f"{model.repository}@{broken[0][:19]} is needed by a kept manifest but is gone"]


def test_a_plan_edited_to_delete_what_its_rules_keep_is_refused(host: str) -> None:
    client = RegistryClient(host)
    model = history(client)
    plan = gc.make_plan(client, [model.repository], RULES, NOW.isoformat())
    stable = model.tags["2024.1-stable"]
    forged = gc.GcPlan.from_dict({**plan.as_dict(), "repositories": [
        {**repository, "deletions": [*repository["deletions"], {
            "repository": model.repository, "digest": stable, "tags": ["2024.1-stable"], "why": "forged",
            "role": "index or image"}]} for repository in plan.as_dict()["repositories"]]}, "forged")
    with pytest.raises(StackError, match=r"deletes 1 manifest\(s\) its own rules keep"):
        gc.apply(client, forged)
    assert client.manifest_digest(model.repository, "2024.1-stable") == stable
    assert gc.apply(client, plan) == len(plan.deletions)  # the plan as made still applies
