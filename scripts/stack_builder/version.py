"""The tool's version, from one place: ``[project] version`` in pyproject.toml.

Installed (``pip install .`` or editable), the distribution's metadata carries it. Run from a source
tree that was never installed, it is read from the pyproject.toml beside the package. Light: it
imports nothing at start-up, and reads nothing until asked.
"""
from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "stack-builder"
UNKNOWN = "unknown"
BUILDER_LABEL = "io.stack-builder.version"  # the label of every image this tool builds: the version that built it
TOOL_REPOSITORY = "stack-builder/stack-builder"  # the tool's home on GitHub: its reusable workflows live there


def version() -> str:
    """This tool's version: the installed distribution's, else the source tree's pyproject.toml, else "unknown"."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return source_tree_version(Path(__file__).resolve().parents[2] / "pyproject.toml")  # scripts/stack_builder/


def source_tree_version(pyproject: Path) -> str:
    """``[project] version`` of a pyproject.toml; "unknown" when it is missing or unreadable."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: no TOML reader in the standard library
        return UNKNOWN
    try:
        found = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return UNKNOWN
    return found if isinstance(found, str) else UNKNOWN


def doit_version() -> str:
    """The version of doit that runs the tasks."""
    from doit.version import VERSION

    return ".".join(str(part) for part in VERSION)
