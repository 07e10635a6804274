"""Kinds, not text: code decides on a reason's kind or an enum, never on the words shown to people.

Read from the package's syntax trees: a comparison (``==``, ``!=``, ``in``, ``not in``) or a
``startswith``/``endswith`` between an expression that names a reason, message, why, kind, note or
summary and a string literal (or a module constant holding one) fails this test.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

from stack_builder.kinds import Reason, ReasonKind, Status

PACKAGE = Path(__file__).resolve().parents[1] / "scripts" / "stack_builder"
TEXTUAL = re.compile(r"\b(reason|reasons|why|message|msg|kind|base_source|note|notes|summary|describe|text)\b")

# Words of outside vocabularies, read where they come in: they are input formats, not text we show.
OUTSIDE_VOCABULARY = {
    # the commit-message convention that forces a full rebuild (the user's words)
    "FULL_REBUILD in str(head.message).lower()",
    # column types as spec.yml declares them, and CSV booleans
    "kind == 'float'", "kind == 'integer'", "kind == 'boolean'", "kind != 'integer'",
    "text.strip().lower() in ('true', '1')",
    # the OCI annotation that marks an attestation manifest in an index
    "kind == 'attestation-manifest'",
    # JSON Schema's validator keywords, turned into messages for people
    "kind == 'additionalProperties'", "kind == 'type'", "kind == 'required'", "kind == 'propertyNames'",
    "kind == 'oneOf'", "kind == 'enum'", "kind == 'pattern'", "kind in {'minItems', 'minProperties', 'minLength'}",
    # the spec's own keys: which kind of path a spec entry names
    "kind == 'tests'",
}


def _is_text_literal(node: ast.expr, constants: set[str]) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_text_literal(e, constants) for e in node.elts)
    return isinstance(node, ast.Name) and node.id in constants


def _string_constants(tree: ast.Module) -> set[str]:
    """Module-level NAMES = "text" (also in tuple assignments)."""
    found: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for name, value in zip(names, values):
                if isinstance(name, ast.Name) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.add(name.id)
    return found


def text_decisions(source: str, filename: str = "<source>") -> list[str]:
    tree = ast.parse(source, filename)
    constants = _string_constants(tree)
    found = []
    for node in ast.walk(tree):
        pairs: list[tuple[ast.expr, ast.expr]] = []
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Compare) and all(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                 for op in node.ops):
            operands = [node.left, *node.comparators]
            pairs = [(a, b) for a, b in zip(operands, operands[1:])]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("startswith", "endswith") and node.args:
            pairs = [(node.func.value, node.args[0])]
        for left, right in pairs:
            for subject, other in ((left, right), (right, left)):
                if TEXTUAL.search(ast.unparse(subject)) and _is_text_literal(other, constants) \
                        and ast.unparse(node) not in OUTSIDE_VOCABULARY:
                    found.append(f"{filename}:{line}: {ast.unparse(node)}")
    return found


def test_no_decision_in_the_package_reads_display_text() -> None:
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             for hit in text_decisions(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))]
    assert found == [], "decide on a kind (an Enum), not on shown text:\n" + "\n".join(found)


def test_the_check_finds_each_way_of_deciding_on_text() -> None:
    # What the check must catch, as the code had it before kinds: each line alone is a finding.
    bad = [
        'if ctx.plan.reasons.get(name) == BASE_UPDATED: pass',
        'by_hand = self.base_source == "--image"',
        'x = {p: w for p, w in failed.items() if "outputs disagree" in str(why)}',
        'x = str(row.get("kind", "build")).startswith("promotion")',
        'x = "skipped" in str(row.get("kind", ""))',
        'ok = result.reason != f"ancestor {name} failed"',
    ]
    for line in bad:
        source = f'BASE_UPDATED = "base image updated"\n{line}\n'
        assert text_decisions(source), line
    good = ['ok = reason.kind is ReasonKind.BASE_UPDATED', 'ok = result.status == Status.FAILED',
            'ok = kind in (RunKind.PROMOTION, RunKind.ROLLBACK)', 'text = f"{reason}" + "x"']
    for line in good:
        assert not text_decisions(line), line


def test_a_reason_shows_its_text_and_the_status_its_old_string() -> None:
    reason = Reason(ReasonKind.BASE_UPDATED, "base image updated")
    assert str(reason) == f"{reason}" == "base image updated"
    assert Status("built") is Status.BUILT and str(Status.FAILED) == "failed" and Status.REUSED.published
    assert not Status.FAILED.published and Status.SKIPPED.unfinished and not Status.BUILT.unfinished
