"""Reading ``spec.yml``: find it, refuse what is too big or not text, parse it, check its shape, assemble.

``SpecError`` lists every problem, each with file, line and key path.
"""
from __future__ import annotations

from pathlib import Path

from stack_builder.errors import SpecError, StackError, shown
from stack_builder.spec import yamlsource
from stack_builder.spec.assemble import assemble
from stack_builder.spec.images import Spec
from stack_builder.spec.problems import Problems, display_path
from stack_builder.spec.shape import check_schema, check_version

SPEC_NAMES = ("spec.yml", "images/spec.yml")
MAX_SPEC_BYTES = 1024 * 1024  # a spec of a thousand images is a few hundred kB


def find_spec(stack_dir: Path) -> Path:
    """``spec.yml`` at the top of the stack, else ``images/spec.yml``."""
    for name in SPEC_NAMES:
        candidate = stack_dir / name
        if candidate.is_file():
            return candidate
    raise StackError(
        f"no spec found in {stack_dir}: create spec.yml (or images/spec.yml) declaring the images; "
        "run stack-builder from the stack folder or pass -d <stack folder>"
    )


def load_spec(stack_dir: Path, *, check_files: bool = True, memo: Path | None = None) -> Spec:
    """Find, parse and validate the stack's spec. Raises ``SpecError`` listing every problem. ``memo``: where
    passed shape checks are remembered (``shape.check_schema``)."""
    path = find_spec(stack_dir)
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError([f"{path.name}: {size:,} bytes is more than a spec may be ({MAX_SPEC_BYTES:,}): refused"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path.name}: not UTF-8 text ({shown(str(exc))})"]) from None
    return parse_spec(text, path=path, stack_dir=stack_dir, check_files=check_files, memo=memo)


def parse_spec(text: str, *, path: Path, stack_dir: Path, check_files: bool = True, memo: Path | None = None) -> Spec:
    """Validate spec text. ``check_files`` also requires each image's Dockerfile to exist."""
    display = display_path(path, stack_dir)
    try:
        located = yamlsource.load(text)
    except yamlsource.YamlSyntaxError as exc:
        where = f"{display}:{exc.line}" if exc.line else display
        raise SpecError([f"{where}: YAML syntax error: {exc}"]) from None

    problems = Problems(display, located)
    for dup_path, line in located.duplicates:
        problems.add(dup_path, f"duplicate key '{dup_path[-1]}' (an earlier one at line "
                               f"{located.lines.get(dup_path, '?')} would be silently replaced)", line=line)
    data = located.data
    if not isinstance(data, dict):
        problems.add((), "the spec must be a mapping with an 'images' key")
        raise SpecError(problems.messages)
    if not check_version(data, problems):  # a newer format: its other keys would only be reported as unknown
        raise SpecError(problems.messages)
    check_schema(data, problems, memo=memo)
    if problems.messages:
        # Semantic checks assume the shapes the schema guarantees.
        raise SpecError(problems.messages)

    spec = assemble(data, path=path, stack_dir=stack_dir, problems=problems, check_files=check_files)
    if spec is None or problems.messages:
        raise SpecError(problems.messages)
    return spec
