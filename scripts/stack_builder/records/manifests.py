"""What is inside an image, kept twice: the structured record (JSON) and its Markdown page.

The record is built from plain data (``checks/inventory.py`` runs the container that gathers it); it is
the source of truth, and the page is rendered from it and never parsed back.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from stack_builder.errors import shown
from stack_builder.records import markdown
from stack_builder.records.files import utc_now, write_json
from stack_builder.spec.stack_spec import ContentTag, InfoCmd

LOGGER = logging.getLogger(__name__)

FOLD_LINES = 25


@dataclass(frozen=True)
class BuildFacts:
    """What the builder knows about an image that the image itself does not say."""

    image: str
    tag: str
    ref: str
    digest: str | None
    commit: str
    branch: str
    commit_url: str | None
    parent: str | None
    platforms: tuple[str, ...]
    tags: tuple[str, ...] = ()  # every tag this build put the image under
    tests: Mapping[str, Any] | None = None  # passed / failed / skipped of its image tests
    model: Mapping[str, Any] | None = None  # functional checks and drift, as the report has them
    dockerfile: str | None = None  # the Dockerfile's path in the repository, for a link at this commit
    recipe: str | None = None  # which of several recipes built it
    recipes_failed: Mapping[str, str] | None = None  # the recipes tried before, and why they failed
    builder: str = ""  # the version of stack-builder that built it ("" when unknown)
    engines: Mapping[str, str] | None = None  # platform -> the engine (its name) that built it, `build --engines`


@dataclass(frozen=True)
class ImageFacts:
    """What the engine says about the image itself, as plain data."""

    id: str
    size: int
    platform: str  # os/architecture
    history: tuple[Mapping[str, Any], ...] = ()  # the engine's history rows (Id, Created, CreatedBy, Size, Tags)


@dataclass(frozen=True)
class Output:
    """What one command printed (stdout and stderr together) and its exit code; -1: it never ran."""

    text: str = ""
    exit_code: int = -1


@dataclass(frozen=True)
class Inventory:
    """What the manifest container said: each info command's output, the package lists, and each content
    tag's output (in the order of the image's content tags)."""

    commands: Mapping[str, Output]
    packages: Mapping[str, Mapping[str, str]]
    content_tags: tuple[Output, ...] = ()
    sizes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # manager -> package -> installed bytes


def build_record(facts: BuildFacts, image: ImageFacts, inventory: Inventory, commands: Mapping[str, InfoCmd], *,
                 content_tags: Sequence[ContentTag] = ()) -> dict[str, Any]:
    """The manifest record of one image: what the builder knows, what the engine says, what the container said.
    ``record["content_tags"]`` holds each content tag's pattern, output and exit code."""
    missing = Output()
    tag_outputs = [*inventory.content_tags, *([missing] * (len(content_tags) - len(inventory.content_tags)))]
    return {
        "image": facts.image, "tag": facts.tag, "ref": facts.ref, "digest": facts.digest, "image_id": image.id,
        "created": utc_now(),
        "commit": facts.commit, "commit_url": facts.commit_url, "branch": facts.branch,
        "size": image.size, "parent": facts.parent, "platforms": list(facts.platforms),
        "tags": list(facts.tags), "tests": dict(facts.tests) if facts.tests else None,
        "model": dict(facts.model) if facts.model else None, "dockerfile": facts.dockerfile,
        "recipe": facts.recipe, "recipes_failed": dict(facts.recipes_failed or {}), "builder": facts.builder,
        "engines": dict(facts.engines or {}), "architecture": image.platform.partition("/")[2],
        "layers": [{"id": layer.get("Id"), "created": layer.get("Created"), "created_by": layer.get("CreatedBy", ""),
                    "size": layer.get("Size", 0), "tags": layer.get("Tags") or []} for layer in image.history],
        "packages": {manager: dict(found) for manager, found in inventory.packages.items()},
        "package_sizes": {manager: dict(found) for manager, found in inventory.sizes.items()},
        "commands": {key: {"description": cmd.description, "command": cmd.command,
                           "exit_code": inventory.commands.get(key, missing).exit_code,
                           "output": inventory.commands.get(key, missing).text}
                     for key, cmd in commands.items()},
        "content_tags": [{"name": t.name, "command": t.command, "output": out.text, "exit_code": out.exit_code}
                         for t, out in zip(content_tags, tag_outputs)],
        "sboms": {},
    }


def record_name(record: Mapping[str, Any]) -> str:
    """The page and file name of a record: <image>-<tag>."""
    return f"{record['image']}-{record['tag']}"


def save(record: dict[str, Any], folders: list[Path]) -> None:
    for folder in folders:
        write_json(folder / f"{record_name(record)}.json", record)


def previous_record(record: Mapping[str, Any], folders: list[Path]) -> dict[str, Any] | None:
    """The newest earlier record of the same image (by creation time), from any of ``folders``."""
    best: dict[str, Any] | None = None
    for folder in folders:
        for path in folder.glob(f"{record['image']}-*.json"):
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if other.get("image") != record["image"] or record_name(other) == record_name(record):
                continue
            if other.get("created", "") <= record["created"] and (best is None or other["created"] > best["created"]):
                best = other
    return best


def package_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(manager, package, before, after) for each package added, removed or changed in version."""
    if before is None:
        return []
    rows = []
    for manager in sorted(set(before.get("packages", {})) | set(after.get("packages", {}))):
        old = before.get("packages", {}).get(manager, {})
        new = after.get("packages", {}).get(manager, {})
        for name in sorted(set(old) | set(new)):
            if old.get(name) != new.get(name):
                rows.append((manager, name, old.get(name, "—"), new.get(name, "—")))
    return rows


_code, _cell = markdown.code, markdown.text  # every value on a page goes through one of these


def _code_text(value: object) -> str:
    """A code span outside a table, where a pipe needs no escape (and would show one)."""
    return markdown.code(value, in_table=False)


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``, so output cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render(record: Mapping[str, Any], previous: Mapping[str, Any] | None, *, parent_page: str | None = None) -> str:
    """The Markdown page of one manifest (``parent_page``: the wiki page of the parent's digest, to link)."""
    yanked = record.get("yanked")
    banner = [f"> **Yanked** {_cell(yanked.get('time', ''))} by {_cell(yanked.get('by', ''))}: "
              f"{_cell(yanked.get('reason', ''))}. Its tags were removed; promotion, rollback and reuse refuse it.",
              ""] if isinstance(yanked, dict) else []
    lines = [f"# {_cell(record['image'])}:{_cell(record['tag'])}", "", *banner, *_build_section(record, parent_page)]
    lines += _model_section(record.get("model")) + _budget_section(record.get("budget"))
    if record.get("digest"):
        repository = str(record["ref"]).rpartition(":")[0] if ":" in str(record["ref"]).rpartition("/")[2] \
            else str(record["ref"])
        lines += [f"Pull exactly this image: {_code_text('docker pull ' + repository + '@' + record['digest'])}", ""]
    lines += _sbom_section(record) + _changes_section(record, previous) + _layers_section(record)
    lines += _packages_section(record) + _commands_section(record)
    return "\n".join(lines).rstrip() + "\n"


def _build_section(record: Mapping[str, Any], parent_page: str | None) -> list[str]:
    """The build's facts, as one table."""
    commit = record["commit"]
    commit_text = f"[{commit[:12]}]({record['commit_url']}) (the diff)" if record.get("commit_url") \
        else f"`{commit[:12]}`"
    source = str(record.get("commit_url") or "").rpartition("/commit/")[0]
    lines = ["## Build", "", "| field | value |", "| --- | --- |",
             f"| Built (UTC) | {record['created']} |", f"| Commit | {commit_text} |",
             f"| Branch | {_cell(record['branch'])} |", f"| Reference | {_code(record['ref'])} |",
             f"| Digest | {_code(record.get('digest') or 'not pushed')} |", f"| Image ID | {_code(record['image_id'])} |",
             f"| Size | {_size(int(record['size']))} |",
             f"| Parent | {_code(record.get('parent') or 'none (a root)')}"
             f"{f' ([its page]({parent_page}))' if parent_page else ''} |",
             f"| Platforms | {_cell(', '.join(record.get('platforms') or []))} |"]
    if record.get("builder"):
        lines.append(f"| Built by | stack-builder {_cell(record['builder'])} |")
    if record.get("engines"):
        lines.append("| Engines | " + ", ".join(f"{_cell(platform)} on {_code(engine)}" for platform, engine in
                                                 sorted(record["engines"].items())) + " |")
    if record.get("tags"):
        lines.append(f"| Tags | {', '.join(_code(t) for t in record['tags'])} |")
    if record.get("recipe"):
        failed = "; ".join(f"{_code(r)} failed: {_cell(why)}" for r, why in (record.get("recipes_failed") or {}).items())
        lines.append(f"| Recipe | {_code(record['recipe'])}" + (f" (tried before: {failed})" if failed else "") + " |")
    for item in record.get("content_tags") or []:
        if int(item.get("exit_code", -1)) == 0:
            lines.append(f"| Content tag {_cell(item['name'])} | {_code(str(item['output']).strip())} "
                         f"(from {_code(item['command'])}) |")
    if source and record.get("dockerfile"):
        lines.append(f"| Dockerfile | [{_cell(record['dockerfile'])} at {commit[:12]}]"
                     f"({source}/blob/{commit}/{record['dockerfile']}) |")
    tests = record.get("tests")
    if tests:
        lines.append(f"| Tests | {int(tests.get('passed', 0))} passed, {int(tests.get('failed', 0))} failed, "
                     f"{int(tests.get('skipped', 0))} skipped |")
    return lines + [""]


def _changes_section(record: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Changes since the previous build", ""]
    if previous is None:
        return lines + ["First recorded build of this image.", ""]
    changes = package_changes(previous, record)
    lines += [f"Compared with {_code(previous['image'] + ':' + previous['tag'])} built "
              f"{_cell(previous['created'])} from {_code(str(previous.get('commit', ''))[:12])}.", ""]
    if changes:
        lines += ["| manager | package | before | after |", "| --- | --- | --- | --- |"]
        lines += [f"| {_cell(m)} | {_cell(p)} | {_cell(b)} | {_cell(a)} |" for m, p, b, a in changes]
    else:
        lines.append("No package was added, removed or changed.")
    return lines + [""]


def _layers_section(record: Mapping[str, Any]) -> list[str]:
    lines = ["## Layers", "", f"{len(record['layers'])} layers, newest first.", ""]
    layers = ["| # | created | size | created by |", "| --- | --- | --- | --- |"]
    for index, layer in enumerate(record["layers"]):
        created = datetime.fromtimestamp(int(layer.get("created") or 0), timezone.utc).strftime("%Y-%m-%d %H:%M")
        layers.append(f"| {index} | {created} | {_size(int(layer.get('size') or 0))} | "
                      f"{_code(shown(' '.join(str(layer.get('created_by') or '').split()), 160))} |")
    return lines + _folded(layers, f"Show {len(record['layers'])} layers") + [""]


def _packages_section(record: Mapping[str, Any]) -> list[str]:
    lines = []
    for manager, packages in record.get("packages", {}).items():
        lines += [f"## Packages: {_cell(manager)}", "", f"{len(packages)} packages.", ""]
        table = ["| package | version |", "| --- | --- |"] + [f"| {_cell(n)} | {_cell(v)} |" for n, v in
                                                               sorted(packages.items())]
        lines += _folded(table, f"Show {len(packages)} {manager} packages") + [""]
    return lines


def _commands_section(record: Mapping[str, Any]) -> list[str]:
    lines = []
    listed = set(record.get("packages", {}))
    for result in record.get("commands", {}).values():
        lines += [f"## {_cell(result['description'])}", "", f"{_code_text(result['command'])} (exit {result['exit_code']})", ""]
        duplicate = next((m for m, words in PACKAGE_COMMANDS.items() if m in listed and
                          any(w in str(result["command"]) for w in words)), None)
        if duplicate:  # one listing per manager: the table above
            lines += [f"Its output lists the {duplicate} packages: see Packages: {duplicate} above.", ""]
            continue
        fence = _fence(result["output"])
        body = [f"{fence}text", *result["output"].splitlines(), fence]
        lines += _folded(body, f"Show {len(result['output'].splitlines())} lines") + [""]
    return lines


PACKAGE_COMMANDS = {"pip": ("pip list", "pip freeze"), "apt": ("apt list", "dpkg -l", "dpkg-query"),
                    "conda": ("conda list",)}


def _sbom_section(record: Mapping[str, Any]) -> list[str]:
    sboms = record.get("sboms") or {}
    if not sboms:
        return []
    lines = ["## SBOM", "", "A CycloneDX SBOM of each platform image, stored in the registry as an artifact whose subject "
             "is the image digest (found through the OCI referrers API, or its `sha256-<hex>` referrers tag).", "",
             "| platform | image digest | SBOM |", "| --- | --- | --- |"]
    for platform, found in sorted(sboms.items()):
        repository = str(found.get("repository", ""))
        host, _, path = repository.partition("/")
        scheme = "http" if host.startswith(("127.", "localhost", "[::1]")) else "https"
        url = f"{scheme}://{host}/v2/{path}/manifests/{found['digest']}"
        lines.append(f"| {_cell(platform)} | {_code(found.get('subject', ''))} | [{_cell(str(found['digest'])[:19])}…]"
                     f"({url}) |")
    platform = sorted(sboms)[0]
    lines += ["", "Download one: " + _code_text(f"stack-builder sbom --image {record['image']} --tag {record['tag']} "
                                                 f"--platform {platform}"), ""]
    return lines


def _model_section(model: Mapping[str, Any] | None) -> list[str]:
    """The model checks of the image: each functional check, and the drift gate with n, ε, δ and the rate."""
    if not model:
        return []
    functional = model.get("functional") or {}
    lines = ["## Model checks", "", f"Functional checks: {'passed' if functional.get('passed') else 'FAILED'}.", "",
             "| check | result |", "| --- | --- |"]
    lines += [f"| {_cell(k)} | {'passed' if v else 'failed'} |" for k, v in (functional.get("checks") or {}).items()]
    drift = model.get("drift") or {}
    lines += ["", f"Drift against the current stable: {_cell(drift.get('status', 'not run'))}: "
              f"n = {drift.get('n', 0)}, ε = {drift.get('epsilon', '—')}, δ = {drift.get('delta', '—')}, "
              f"observed disagreement {drift.get('observed_rate', '—')} (allowed {drift.get('max_disagreement', '—')}).",
              ""]
    return lines


def _budget_section(budget: Mapping[str, Any] | None) -> list[str]:
    """Each limit of the image's budget and how much of it the image uses (per platform)."""
    if not budget:
        return []
    lines = ["## Budget", ""]
    if budget.get("allowed_over"):
        lines += [f"> **Over budget**, pushed with `--allow-over-budget`: {_cell('; '.join(budget.get('over') or []))}",
                  ""]
    lines += ["| budget | limit | platform | used | of the limit |", "| --- | --- | --- | --- | --- |"]
    size = budget.get("size") or {}
    for platform, used in sorted((size.get("used") or {}).items()):
        limit = int(size["limit"])
        lines.append(f"| size (compressed) | {_size(limit)} | {_cell(platform)} | {_size(int(used))} | "
                     f"{100 * int(used) / limit:.1f}% |")
    growth = budget.get("growth") or {}
    for platform, used in sorted((growth.get("used") or {}).items()):
        limit_text = f"{float(growth['limit']):g}%"
        if not isinstance(used, Mapping):
            lines.append(f"| growth | {limit_text} | {_cell(platform)} | no quarter-stable yet: not applied | |")
            continue
        share = f"{100 * float(used['percent']) / float(growth['limit']):.1f}%" if float(growth["limit"]) else "—"
        lines.append(f"| growth | {limit_text} | {_cell(platform)} | {float(used['percent']):+.2f}% over "
                     f"{_cell(used['stable'])} ({_size(int(used['stable_size']))}) | {share} |")
    deny = budget.get("deny") or {}
    for manager, patterns in sorted((deny.get("patterns") or {}).items()):
        found = [f"{_cell(f['package'])} {_cell(f['version'])}" for f in deny.get("found") or []
                 if f.get("manager") == manager]
        lines.append(f"| deny {_cell(manager)} | {', '.join(_code(p) for p in patterns) or 'none'} | all | "
                     f"{', '.join(found) or 'none found'} | |")
    return lines + [""]


def _folded(block: list[str], summary: str) -> list[str]:
    if len(block) <= FOLD_LINES:
        return block
    return ["<details>", f"<summary>{summary}</summary>", "", *block, "", "</details>"]
