"""The workflow reference, made from the workflow files as they are when the site is built.

A reusable workflow (``on: workflow_call``) gets how to call it from another repository (the ``uses:`` line
with this builder's version, its required inputs, the permissions its jobs need), then its inputs, secrets and
outputs; a workflow run by hand (``workflow_dispatch``) gets its inputs; every workflow its triggers, its jobs
and what its opening comment says. An input, secret or output of a reusable workflow without a description
stops the build: a caller must be able to read what to pass.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import yaml

from stack_builder.docs.mdtext import DocsError, anchor, code, prose, table, text

LEVELS = {"none": 0, "read": 1, "write": 2}


@dataclass(frozen=True)
class Workflow:
    """One workflow file: its name, its parsed YAML and its opening comment."""
    filename: str
    data: Mapping[str, Any]
    comment: str

    @classmethod
    def parse(cls, filename: str, source: str) -> Workflow:
        try:
            data = yaml.safe_load(source)
        except yaml.YAMLError as error:
            raise DocsError(f"{filename}: not valid YAML: {error}") from error
        if not isinstance(data, dict):
            raise DocsError(f"{filename}: not a workflow (a mapping with on: and jobs:)")
        if True in data:  # YAML 1.1 reads the key `on` as true
            data["on"] = data.pop(True)
        if "on" not in data or not isinstance(data.get("jobs"), dict):
            raise DocsError(f"{filename}: a workflow needs on: and jobs:")
        comment = []
        for line in source.splitlines():
            if not line.startswith("#"):
                break
            comment.append(line[1:].strip())
        return cls(filename, data, "\n".join(comment))

    @property
    def events(self) -> dict[str, Mapping[str, Any]]:
        triggers = self.data["on"]
        if isinstance(triggers, str):
            return {triggers: {}}
        if isinstance(triggers, list):
            return {str(t): {} for t in triggers}
        return {str(name): (spec if isinstance(spec, Mapping) else {}) for name, spec in triggers.items()}

    @property
    def reusable(self) -> bool:
        return "workflow_call" in self.events

    @property
    def title(self) -> str:
        return str(self.data.get("name") or self.filename)


def _described(workflow: Workflow, what: str, name: str, spec: Mapping[str, Any]) -> str:
    said = str(spec.get("description") or "").strip()
    if not said and workflow.reusable and what != "dispatch input":
        raise DocsError(f"{workflow.filename}: the workflow_call {what} {name!r} has no description")
    return prose(said)


def _inputs(workflow: Workflow, inputs: Mapping[str, Any], what: str) -> str:
    rows = []
    for name, raw in inputs.items():
        spec = raw if isinstance(raw, Mapping) else {}
        default = code(json.dumps(spec["default"]) if not isinstance(spec["default"], str) else spec["default"]) \
            if "default" in spec and spec["default"] != "" else ""
        rows.append([code(str(name)), text(str(spec.get("type", "string"))), "yes" if spec.get("required") else "",
                     default, _described(workflow, what, str(name), spec)])
    return table(["Input", "Type", "Required", "Default", "Description"], rows)


def permissions_needed(workflow: Workflow) -> dict[str, str]:
    """What a calling job must grant: for each scope, the highest level any job of the workflow asks for."""
    needed: dict[str, str] = {}
    for job in workflow.data["jobs"].values():
        asked = (job or {}).get("permissions") or workflow.data.get("permissions") or {}
        for scope, level in (asked.items() if isinstance(asked, Mapping) else ()):
            if LEVELS.get(str(level), 0) > LEVELS.get(needed.get(str(scope), "none"), 0):
                needed[str(scope)] = str(level)
    return dict(sorted(needed.items()))


def call_example(workflow: Workflow, version: str) -> str:
    """A calling job, as a stack repository writes it."""
    call = workflow.events["workflow_call"]
    job = workflow.filename.rsplit(".", 1)[0].replace("-", "_")
    lines = ["```yaml", "jobs:", f"  {job}:", f"    uses: OWNER/REPO/.github/workflows/{workflow.filename}@v{version}"]
    needed = permissions_needed(workflow)
    if needed:
        lines += ["    permissions:"] + [f"      {scope}: {level}" for scope, level in needed.items()]
    required = [name for name, spec in (call.get("inputs") or {}).items() if (spec or {}).get("required")]
    if required:
        lines += ["    with:"] + [f"      {name}: ...  # required" for name in required]
    if call.get("secrets"):
        lines.append("    secrets: inherit")
    return "\n".join(lines + ["```"])


def _reusable_part(workflow: Workflow, version: str) -> list[str]:
    call = workflow.events["workflow_call"]
    parts = ["**Call it** from a job of your own workflow (`OWNER/REPO` is where the builder's workflows live):",
             call_example(workflow, version)]
    if call.get("inputs"):
        parts += ["**Inputs** (`with:`)", _inputs(workflow, call["inputs"], "input")]
    if call.get("secrets"):
        rows = [[code(str(name)), "yes" if (spec or {}).get("required") else "",
                 _described(workflow, "secret", str(name), spec or {})] for name, spec in call["secrets"].items()]
        parts += ["**Secrets** (or `secrets: inherit`)", table(["Secret", "Required", "Description"], rows)]
    if call.get("outputs"):
        rows = [[code(str(name)), _described(workflow, "output", str(name), spec or {})]
                for name, spec in call["outputs"].items()]
        parts += ["**Outputs** (`needs.<job>.outputs.<name>`)", table(["Output", "Description"], rows)]
    return parts


def workflow_markdown(workflow: Workflow, version: str) -> str:
    parts = [f"### {text(workflow.title)} ({code(workflow.filename)}) {{#{anchor(workflow.filename)}}}"]
    if workflow.comment:
        parts += [prose(paragraph) for paragraph in workflow.comment.split("\n\n") if paragraph.strip()]
    parts.append("**Runs on:** " + ", ".join(code(event) for event in workflow.events) + ".")
    if workflow.reusable:
        parts += _reusable_part(workflow, version)
    dispatch = workflow.events.get("workflow_dispatch", {})
    if dispatch.get("inputs"):
        parts += ["**Run by hand** (Actions → the workflow → Run workflow) with these inputs:",
                  _inputs(workflow, dispatch["inputs"], "dispatch input")]
    jobs = []
    for name, job in workflow.data["jobs"].items():
        needs = (job or {}).get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        after = f" (after {', '.join(code(str(n)) for n in needs)})" if needs else ""
        uses = f": calls {code(str(job['uses']))}" if isinstance(job, Mapping) and job.get("uses") else ""
        jobs.append(f"- {code(str(name))}{after}{uses}")
    parts += ["**Jobs:**", "\n".join(jobs)]
    return "\n\n".join(parts)


def workflow_reference(files: Sequence[tuple[str, str]], version: str) -> str:
    """The reference page's body for workflow files given as (file name, content): reusable ones first."""
    workflows = [Workflow.parse(name, source) for name, source in sorted(files)]
    if not workflows:
        raise DocsError("no workflow files were found under .github/workflows/")
    reusable = [w for w in workflows if w.reusable]
    others = [w for w in workflows if not w.reusable]
    summary = table(["Workflow", "File", "Runs on", "Reusable"],
                    [[f"[{text(w.title)}](#{anchor(w.filename)})", code(w.filename),
                      ", ".join(code(e) for e in w.events), "yes" if w.reusable else ""] for w in workflows])
    parts = [summary]
    if reusable:
        parts += ["## Reusable workflows {#reusable-workflows}"] + [workflow_markdown(w, version) for w in reusable]
    if others:
        parts += ["## Other workflows {#other-workflows}"] + [workflow_markdown(w, version) for w in others]
    return "\n\n".join(parts) + "\n"
