"""The model catalog: every model image with its columns, digests per tag, architectures, last checks and
precalculation coverage. Facts in ``wiki/_data/models.json`` (updated by build, tag and precalc);
``wiki/Models.md`` is rendered from them (pure)."""
from __future__ import annotations

from typing import Any, Mapping

from stack_builder.records import markdown
from stack_builder.secrets import redact_all
from stack_builder.spec.stack_spec import Spec

PER_KEY = ("digests", "coverage", "stores", "libraries")  # facts merged per tag or digest, not replaced


def merged(models: Mapping[str, Any], name: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    """``models`` with ``facts`` merged into the entry of ``name``: ``digests`` add up per tag, ``coverage``,
    ``stores`` and ``libraries`` per digest; everything else replaces what was there."""
    out = {k: dict(v) for k, v in models.items() if isinstance(v, dict)}
    entry = out.setdefault(name, {})
    for key, value in facts.items():
        if key in PER_KEY and isinstance(value, Mapping):
            entry[key] = {**(entry.get(key) or {}), **value}
        else:
            entry[key] = value
    return out


def facts(tag: str, result: Mapping[str, Any]) -> dict[str, Any]:
    """What the catalog keeps of a model image's build result (as build-report.json has it)."""
    failed = result.get("platforms_failed") or {}
    out: dict[str, Any] = {
        "digests": {tag: result.get("digest")}, "platforms_built": list(result.get("platforms_built") or []),
        "platforms_disagreeing": {p: str(failed.get(p, "")) for p in result.get("platforms_disagreeing") or []}}
    model = result.get("model")
    if isinstance(model, Mapping) and isinstance(model.get("functional"), Mapping):
        out["checks"] = {"tag": tag, "functional": bool(model["functional"].get("passed")),
                         "drift": str((model.get("drift") or {}).get("status", "not run"))}
    return out


def render(spec: Spec, models: Mapping[str, Any]) -> str:
    names = [n for n, image in spec.images.items() if image.model is not None]
    lines = ["# Models", "", f"The {len(names)} model image(s) of this stack: what each predicts, where it is, on "
             "which architectures its platforms agree, its last checks and how much of it is precalculated.", ""]
    if not names:
        return "\n".join(lines + ["No model image in this stack.", ""])
    for name in names:
        model = spec.images[name].model
        entry = models.get(name) or {}
        columns = ", ".join(f"{markdown.code(c, in_table=False)} ({t})" for c, t in (model.columns if model else ()))
        lines += [f"## {markdown.text(name)}", "", f"Predicts: {columns}.", ""]
        digests = entry.get("digests") or {}
        coverage = entry.get("coverage") or {}
        if digests:
            lines += ["| tag | digest | rows precalculated | store | reference library covered |",
                      "| --- | --- | --- | --- | --- |"]
            for tag, digest in sorted(digests.items()):
                lines.append(f"| {markdown.text(tag)} | {markdown.code(digest)} | {coverage.get(digest, 0)} | "
                             f"{_store(entry, digest)} | {_covered(entry, digest)} |")
            lines.append("")
        else:
            lines += ["Not built yet.", ""]
        built, disagreeing = entry.get("platforms_built") or [], entry.get("platforms_disagreeing") or {}
        if built or disagreeing:
            lines.append(f"Architectures agreeing: {markdown.text(', '.join(built) or 'none')}" +
                         (f"; left out (outputs disagree): {markdown.text(', '.join(disagreeing))}" if disagreeing
                          else "") + ".")
        checks = entry.get("checks")
        if isinstance(checks, Mapping):
            lines.append(f"Last checks ({markdown.text(checks.get('tag', ''))}): functional "
                         f"{'passed' if checks.get('functional') else 'FAILED'}, drift "
                         f"{markdown.text(checks.get('drift', 'not run'))}.")
        other = {d: n for d, n in coverage.items() if d not in set(digests.values())}
        if other:
            lines.append("Precalculated for other digests: " + ", ".join(
                f"{markdown.code(d, in_table=False)} ({n} rows, {_store(entry, d)}, library {_covered(entry, d)})"
                for d, n in sorted(other.items())))
        lines.append("")
    return "\n".join(lines) + "\n"


def _store(entry: Mapping[str, Any], digest: str) -> str:
    """Where ``digest``'s predictions live: the store's URL as precalc recorded it (never with credentials)."""
    where = (entry.get("stores") or {}).get(digest)
    return markdown.code(redact_all(str(where))) if where else "–"


def _covered(entry: Mapping[str, Any], digest: str) -> str:
    """How much of the reference library the last run for ``digest`` stored: rows of rows, and its name."""
    library = (entry.get("libraries") or {}).get(digest)
    if not isinstance(library, Mapping) or not library.get("rows"):
        return "–"
    rows, covered = int(library.get("rows") or 0), int(library.get("covered") or 0)
    return (f"{covered}/{rows} ({100 * covered / rows:.1f}%) of "
            f"{markdown.code(str(library.get('library', '')))}")
