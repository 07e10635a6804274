"""``gc``: plan what the registry may lose, apply exactly that plan if nothing moved meanwhile, then prove that
every tag left still resolves completely.

The plan is data (``GcPlan``, saved as JSON): the keep rules, every tag as it was seen, and per repository what
is kept (and why) and what is deleted (and why), with the bytes that frees. Applying it first reads every tag
again: a tag added, moved or removed since the plan stops the apply before anything is deleted. Deletes go
referrers first, then platform manifests, then indexes and images, so a run stopped part way leaves only
tagged (visible) leftovers for the next run. Afterwards, every tag left is read to the end: its manifest, its
index's platform manifests, its referrers and every blob they use.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from stack_builder.errors import RegistryError, StackError, shown
from stack_builder.registry import github_packages
from stack_builder.registry.client import RegistryClient
from stack_builder.registry.lookups import Lookups
from stack_builder.release.gc_graph import Repository
from stack_builder.release.gc_rules import Deletion, KeepRules, RepositoryPlan, Role, plan_repository
from stack_builder.release.gc_scan import scan

LOGGER = logging.getLogger(__name__)
PLAN_FORMAT = 1


@dataclass(frozen=True)
class GcPlan:
    registry: str
    made: str
    rules: KeepRules
    repositories: tuple[RepositoryPlan, ...]
    tags: Mapping[str, Mapping[str, str]]  # repository -> tag -> digest, as the plan saw them

    @property
    def deletions(self) -> list[Deletion]:
        return [d for r in self.repositories for d in r.deletions]

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes_freed for r in self.repositories)

    def as_dict(self) -> dict[str, Any]:
        rules = {"builds": self.rules.builds, "days": self.rules.days, "keep": sorted(self.rules.keep),
                 "keep_commits": sorted(self.rules.keep_commits), "now": self.rules.now.isoformat()}
        return {"format_version": PLAN_FORMAT, "registry": self.registry, "made": self.made, "rules": rules,
                "tags": {name: dict(tags) for name, tags in self.tags.items()},
                "repositories": [{"name": r.name, "kept": dict(r.kept), "bytes_freed": r.bytes_freed,
                                  "broken": list(r.broken), "deletions": [asdict(d) for d in r.deletions]}
                                 for r in self.repositories]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> "GcPlan":
        from datetime import datetime

        if data.get("format_version") != PLAN_FORMAT:
            raise StackError(f"{where}: not a gc plan of format {PLAN_FORMAT}: make the plan again with this "
                             "stack-builder (gc --dry-run)")
        try:
            rules = data["rules"]
            return cls(str(data["registry"]), str(data["made"]), KeepRules(
                int(rules["builds"]), int(rules["days"]), frozenset(str(d) for d in rules["keep"]),
                frozenset(str(c) for c in rules["keep_commits"]), datetime.fromisoformat(str(rules["now"]))),
                tuple(RepositoryPlan(str(r["name"]), {str(k): str(v) for k, v in r["kept"].items()}, tuple(
                    Deletion(str(d["repository"]), str(d["digest"]), tuple(str(t) for t in d["tags"]), str(d["why"]),
                             Role(d["role"]))
                    for d in r["deletions"]), int(r["bytes_freed"]), tuple(str(b) for b in r.get("broken", ())))
                    for r in data["repositories"]),
                {str(n): {str(t): str(d) for t, d in tags.items()} for n, tags in data["tags"].items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StackError(f"{where}: not a readable gc plan ({type(exc).__name__}): make it again "
                             "(gc --dry-run)") from None

    def lines(self) -> list[str]:
        lines = [f"gc plan for registry {self.registry} (keep: the newest {self.rules.builds} per-commit builds per "
                 f"branch, anything younger than {self.rules.days} days"
                 + (f", {len(self.rules.keep)} digest(s) named with --keep" if self.rules.keep else "")
                 + (f", the builds of {len(self.rules.keep_commits)} commit(s) named with --keep-commit"
                    if self.rules.keep_commits else "") + ")"]
        for repository in self.repositories:
            lines.append(f"  {repository.name}: keep {len(repository.kept)}, delete {len(repository.deletions)} "
                         f"({size_text(repository.bytes_freed)})")
            for deletion in repository.deletions:
                tags = f" [{', '.join(deletion.tags)}]" if deletion.tags else " (untagged)"
                lines.append(f"    delete {deletion.digest[:19]}{tags}: {deletion.why}")
            for digest in repository.broken:
                lines.append(f"    WARNING: {digest[:19]} is needed by something kept but the registry no longer "
                             "serves it (broken before this gc): repair or rebuild that image")
        lines.append(f"in all: {len(self.deletions)} manifest(s) to delete, {size_text(self.bytes_freed)} freed once "
                     "the registry collects its garbage")
        return lines


@dataclass(frozen=True)
class GcResult:
    deleted: int
    tags_checked: int
    manifests_checked: int
    blobs_checked: int
    problems: list[str] = field(default_factory=list)


def make_plan(client: RegistryClient, repositories: list[str], rules: KeepRules, made: str) -> GcPlan:
    seen = scan(client, repositories)
    return GcPlan(client.host, made, rules, tuple(plan_repository(r, rules) for r in seen),
                  {r.name: dict(r.tags) for r in seen})


def check_unmoved(client: RegistryClient, plan: GcPlan) -> None:
    """Raise ``StackError`` naming every tag added, moved or removed since ``plan`` was made."""
    lookups = Lookups(client)
    changed: list[str] = []
    for name, before in plan.tags.items():
        tags = sorted(lookups.tags(name))
        now = dict(zip(tags, lookups.each(lambda tag: lookups.digest(name, tag) or "", tags)))
        for tag in sorted(set(before) | set(now)):
            if before.get(tag) != now.get(tag):
                was, became = before.get(tag, "absent"), now.get(tag, "absent")
                changed.append(f"{name}:{tag} was {was[:19]}, now {became[:19]}")
    if changed:
        raise StackError(f"the registry changed since the gc plan was made ({len(changed)} tag(s): "
                         f"{shown('; '.join(changed))}); nothing was deleted: make a new plan (gc --dry-run) and "
                         "apply that")


def apply(client: RegistryClient, plan: GcPlan) -> int:
    """Delete what ``plan`` says (after ``check_unmoved``); the number of manifests deleted. A delete that fails
    stops the run with what was deleted before it said: the next plan sees what is left."""
    if client.host != plan.registry:
        raise StackError(f"the gc plan is for registry {plan.registry}, not {client.host}: make a plan for this one")
    check_unmoved(client, plan)
    _check_rules_agree(client, plan)
    deleted = 0
    for repository in plan.repositories:
        versions = _versions(client, repository.name) if github_packages.is_ghcr(client.host) else {}
        for deletion in _ordered(repository):
            try:
                done = _delete(client, repository.name, deletion, versions)
            except (RegistryError, StackError) as exc:
                raise StackError(f"gc stopped after deleting {deleted} of {len(plan.deletions)} manifest(s): "
                                 f"{repository.name}@{deletion.digest[:19]}: {exc}; what is left stays consistent: "
                                 "make a new plan and apply it") from None
            deleted += done
            if done:
                LOGGER.info("deleted %s@%s (%s)", repository.name, deletion.digest[:19], deletion.why)
    return deleted


def _check_rules_agree(client: RegistryClient, plan: GcPlan) -> None:
    """The plan's deletions are what its own rules decide on the registry as it is now: a plan file edited (or
    written) by hand cannot delete what the rules keep, such as a stable tag's digest."""
    fresh = make_plan(client, [r.name for r in plan.repositories], plan.rules, plan.made)
    allowed = {(d.repository, d.digest) for d in fresh.deletions}
    extra = sorted(f"{d.repository}@{d.digest[:19]}" for d in plan.deletions if (d.repository, d.digest) not in allowed)
    if extra:
        raise StackError(f"the gc plan deletes {len(extra)} manifest(s) its own rules keep ({shown(', '.join(extra))}); "
                         "nothing was deleted: make the plan again with gc --dry-run")


def _delete(client: RegistryClient, name: str, deletion: Deletion,
            versions: Mapping[str, github_packages.PackageVersion]) -> int:
    """Delete one manifest (on GHCR: its package version); 1 if it was deleted, 0 if it was gone already."""
    if not github_packages.is_ghcr(client.host):
        return int(client.delete_manifest(name, deletion.digest))
    version = versions.get(deletion.digest)
    if version is None:
        LOGGER.warning("%s@%s: no package version any more (deleted meanwhile)", name, deletion.digest[:19])
        return 0
    unplanned = sorted(set(version.tags) - set(deletion.tags))
    if unplanned:
        raise StackError(f"GitHub says it is tagged {', '.join(unplanned)}, which the plan did not see")
    return int(github_packages.delete_version_id(name, version.id, _token(client), api=client.settings.github_api))


def _ordered(repository: RepositoryPlan) -> list[Deletion]:
    """Referrers first, platform manifests next, indexes and images last. A run stopped part way leaves only what
    the next run still sees through a tag (an index whose platform manifests are gone is read as such, and
    deleted); deleting an index first could leave its untagged platform manifests where no tag leads. For the
    same reason, within each kind the untagged go before the tagged (an SBOM before the referrers index listing it)."""
    rank = {Role.REFERRER: 0, Role.PLATFORM: 1, Role.TOP: 2}
    return sorted(repository.deletions, key=lambda d: (rank[d.role], bool(d.tags), d.digest))


def _token(client: RegistryClient) -> str:
    if client.credentials is None:
        raise RegistryError("deleting on GHCR needs a token: set STACK_REGISTRY_USER and STACK_REGISTRY_PASSWORD")
    return client.credentials.password


def _versions(client: RegistryClient, name: str) -> dict[str, github_packages.PackageVersion]:
    return {v.digest: v for v in github_packages.list_versions(name, _token(client), api=client.settings.github_api)}


def verify(client: RegistryClient, repositories: list[str], plan: GcPlan | None = None) -> GcResult:
    """Read every tag left to the end: manifests, platform manifests, referrers, then every blob they use; with
    the ``plan`` applied, also every tag and manifest it kept: still there, the same. Problems are returned, not
    raised, so all of them are told."""
    problems: list[str] = []
    try:
        seen = scan(client, repositories)
    except RegistryError as exc:
        return GcResult(0, 0, 0, 0, [str(exc)])
    problems += [f"{r.name}@{digest[:19]} is needed by a kept manifest but is gone" for r in seen
                 for digest in sorted(r.missing) if _reached_by_tag(r, digest)]
    if plan is not None:
        problems += _kept_still_there(plan, {r.name: r for r in seen})
    lookups = Lookups(client)
    blobs = sorted({f"{r.name}@{blob}" for r in seen for node in r.nodes.values() for blob, _ in node.blobs})
    present = lookups.each(lambda item: client.has_blob(*item.split("@", 1)), blobs)
    problems += [f"{item.split('@', 1)[0]}: blob {item.split('@', 1)[1][:19]} is gone"
                 for item, ok in zip(blobs, present) if not ok]
    return GcResult(0, sum(len(r.tags) for r in seen), sum(len(r.nodes) for r in seen), len(blobs), problems)


def _reached_by_tag(repository: Repository, digest: str) -> bool:
    return any(digest in node.children for node in repository.nodes.values())


def _kept_still_there(plan: GcPlan, seen: Mapping[str, Repository]) -> list[str]:
    """Every tag the plan kept still points where it did; every manifest it kept is still served."""
    problems = []
    for repository in plan.repositories:
        now = seen.get(repository.name)
        for tag, digest in plan.tags.get(repository.name, {}).items():
            if digest in repository.kept and (now is None or now.tags.get(tag) != digest):
                problems.append(f"{repository.name}:{tag} was kept at {digest[:19]} but now "
                                f"{'is gone' if now is None or tag not in now.tags else 'points elsewhere'}")
        for digest in repository.kept:
            if now is None or digest not in now.nodes:
                problems.append(f"{repository.name}@{digest[:19]} was kept ({repository.kept[digest]}) but is gone")
    return problems


def size_text(count: int) -> str:
    """Bytes as a person reads them (decimal units)."""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{value:.1f} {unit}"
    return f"{count} B"


__all__ = ["GcPlan", "GcResult", "Repository", "apply", "check_unmoved", "make_plan", "verify"]
