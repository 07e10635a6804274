"""What fills each ``<!-- generated: NAME -->`` marker of the documentation's pages, read from the code now."""
from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Callable, Mapping

from stack_builder.docs.mdtext import DocsError

MARKER = re.compile(r"<!--\s*generated:\s*([A-Za-z0-9_-]+)\s*-->")


def spec_page(root: Path) -> str:
    """The spec reference, from the schema the installed tool validates with."""
    from stack_builder.docs.spec_page import spec_reference

    schema = json.loads((resources.files("stack_builder.spec") / "spec.schema.json").read_text(encoding="utf-8"))
    return spec_reference(schema)


def commands_page(root: Path) -> str:
    """The command reference, from the tasks' creators and the options every command takes."""
    from stack_builder.apps import cli, doit_tasks
    from stack_builder.docs.commands_page import command_reference, commands_of

    return command_reference(commands_of(doit_tasks), [cli.STACK_DIR_OPTION])


def workflows_page(root: Path) -> str:
    """The workflow reference, from the workflow files of the repository the site is built from."""
    from stack_builder.docs.workflows_page import workflow_reference
    from stack_builder.version import version

    folder = root / ".github" / "workflows"
    files = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.y*ml"))]
    return workflow_reference(files, version())


def bundled_spec(root: Path) -> str:
    """The bundled stack's spec.yml, as an example."""
    path = root / "spec.yml"
    if not path.is_file():
        raise DocsError(f"{path} is missing: the example spec comes from it")
    return "```yaml\n" + path.read_text(encoding="utf-8").rstrip("\n") + "\n```\n"


GENERATORS: Mapping[str, Callable[[Path], str]] = {
    "spec-reference": spec_page,
    "command-reference": commands_page,
    "workflow-reference": workflows_page,
    "bundled-spec": bundled_spec,
}


def expand(markdown: str, root: Path, used: set[str] | None = None) -> str:
    """``markdown`` with each marker replaced by what its generator makes of ``root`` (names added to ``used``)."""
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise DocsError(f"unknown generated section {name!r} (known: {', '.join(sorted(GENERATORS))})")
        if used is not None:
            used.add(name)
        return GENERATORS[name](root)

    return MARKER.sub(replace, markdown)
