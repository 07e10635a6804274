"""The manifest container: info commands, package lists and content-tag commands of an image, run in one
container, handed to ``records/manifests.py`` as plain data.

One container for everything, because starting one costs more than all the commands together. Each
command's output is framed by a random marker, so nothing an image prints can fake another command's
section or exit code.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
from typing import Any, Mapping, Sequence

from stack_builder.engine import containers, images
from stack_builder.engine.client import Engine
from stack_builder.errors import StepFailed
from stack_builder.records.manifests import BuildFacts, ImageFacts, Inventory, Output, build_record
from stack_builder.spec.stack_spec import DEFAULT_TIMEOUTS, ContentTag, InfoCmd

LOGGER = logging.getLogger(__name__)

INFO_TIMEOUT_S = DEFAULT_TIMEOUTS["info_cmds"]  # all info commands and package queries of one image together
# Package managers asked in the same container as the info commands; absent ones print nothing.
PACKAGE_QUERIES = {
    "pip": "command -v python >/dev/null 2>&1 && python -m pip list --format=json 2>/dev/null",
    "apt": "command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${Package}\\t${Version}\\n'",
    "conda": "command -v conda >/dev/null 2>&1 && conda list --json 2>/dev/null",
}
# Installed sizes, where a manager knows them: dpkg's Installed-Size is in KiB.
SIZE_QUERIES = {"apt": "command -v dpkg-query >/dev/null 2>&1 && dpkg-query -W -f='${Package}\\t${Installed-Size}\\n'"}
_PACKAGE_KEY, _TAG_KEY, _SIZE_KEY = "__{}", "__tag{}", "__size{}"  # section keys no info command can have (spec keys are identifiers)


def collect(client: Engine, image_ref: str, facts: BuildFacts, commands: Mapping[str, InfoCmd], *,
            timeout_s: float = INFO_TIMEOUT_S, content_tags: Sequence[ContentTag] = ()) -> dict[str, Any]:
    """Run every info command, package query and content-tag command in one container; return the manifest
    record (``records.manifests.build_record``) of ``image_ref``."""
    inventory = run_inventory(client, image_ref, commands, timeout_s=timeout_s, content_tags=content_tags)
    return build_record(facts, image_facts(client, image_ref), inventory, commands, content_tags=content_tags)


def run_inventory(client: Engine, image_ref: str, commands: Mapping[str, InfoCmd], *,
                  timeout_s: float = INFO_TIMEOUT_S, content_tags: Sequence[ContentTag] = ()) -> Inventory:
    """What the info commands, package queries and content-tag commands print, from one container."""
    sections = _run_sections(client, image_ref, [
        *((key, cmd.command) for key, cmd in commands.items()),
        *((_PACKAGE_KEY.format(m), q) for m, q in PACKAGE_QUERIES.items()),
        *((_SIZE_KEY.format(m), q) for m, q in SIZE_QUERIES.items()),
        *((_TAG_KEY.format(i), t.command) for i, t in enumerate(content_tags))],
        timeout_s=timeout_s, what=f"the info commands of {image_ref}")
    missing = Output()
    return Inventory(commands={key: sections.get(key, missing) for key in commands}, packages=_packages(sections),
                     content_tags=tuple(sections.get(_TAG_KEY.format(i), missing) for i in range(len(content_tags))),
                     sizes=_sizes(sections))


def image_facts(client: Engine, image_ref: str) -> ImageFacts:
    """The engine's facts about a local image: id, size, platform and layer history."""
    image = images.find(client, image_ref)
    if image is None:
        raise StepFailed(f"manifest of {image_ref} could not be collected: the image is not in the engine")
    return ImageFacts(id=image.id, size=image.size, platform=image.platform,
                      history=tuple(images.history(client, image.id)))


def package_inventory(client: Engine, image_ref: str, *, timeout_s: float = INFO_TIMEOUT_S) -> dict[str, dict[str, str]]:
    """Only the package inventory of an image (for the SBOM of a platform other than the record's)."""
    return _packages(_run_sections(client, image_ref, [(_PACKAGE_KEY.format(m), q) for m, q in PACKAGE_QUERIES.items()],
                                   timeout_s=timeout_s, what=f"the package inventory of {image_ref}"))


def _run_sections(client: Engine, image_ref: str, parts: Sequence[tuple[str, str]], *, timeout_s: float,
                  what: str) -> dict[str, Output]:
    marker = f"@@stack-{secrets.token_hex(6)}"
    script = "\n".join(f"printf '\\n{marker} begin {key}\\n'; ( {command} ) 2>&1; "
                       f"printf '\\n{marker} end {key} %s\\n' $?" for key, command in parts)
    finished = containers.run(client, image_ref, [script], entrypoint=["/bin/sh", "-c"], network_disabled=True,
                              timeout=containers.timeout_s(timeout_s), what=what)
    return _split(finished.output, marker)


def _split(text: str, marker: str) -> dict[str, Output]:
    found: dict[str, Output] = {}
    pattern = re.compile(rf"^{re.escape(marker)} begin (\S+)\n(.*?)\n?^{re.escape(marker)} end \1 (\d+)$", re.S | re.M)
    for match in pattern.finditer(text):
        found[match.group(1)] = Output(match.group(2).strip("\n"), int(match.group(3)))
    return found


def _sizes(sections: Mapping[str, Output]) -> dict[str, dict[str, int]]:
    """Installed bytes of each package, where its manager says (apt: Installed-Size, KiB)."""
    apt = sections.get(_SIZE_KEY.format("apt"), Output(exit_code=1))
    if apt.exit_code != 0:
        return {}
    found = {}
    for line in apt.text.splitlines():
        name, _, kib = line.partition("\t")
        if kib.strip().isdigit():
            found[name] = int(kib.strip()) * 1024
    return {"apt": found} if found else {}


def _packages(sections: Mapping[str, Output]) -> dict[str, dict[str, str]]:
    packages: dict[str, dict[str, str]] = {}
    pip = sections.get(_PACKAGE_KEY.format("pip"), Output(exit_code=1))
    if pip.exit_code == 0:
        try:
            packages["pip"] = {p["name"].lower(): p["version"] for p in json.loads(pip.text)}
        except (ValueError, KeyError, TypeError):
            LOGGER.warning("pip list output was not JSON; pip packages left out")
    apt = sections.get(_PACKAGE_KEY.format("apt"), Output(exit_code=1))
    if apt.exit_code == 0:
        packages["apt"] = dict(line.split("\t", 1) for line in apt.text.splitlines() if "\t" in line)
    conda = sections.get(_PACKAGE_KEY.format("conda"), Output(exit_code=1))
    if conda.exit_code == 0:
        try:
            packages["conda"] = {p["name"]: p["version"] for p in json.loads(conda.text)}
        except (ValueError, KeyError, TypeError):
            LOGGER.warning("conda list output was not JSON; conda packages left out")
    return packages
