"""The ``spec.yml`` reference, made from the JSON Schema the tool validates every spec with.

One section per mapping (the top level, ``tag``, ``images.<name>``, ``images.<name>.model``, ...), with a row per
key: its type, whether it is required, its constraints and its description. A keyword this generator cannot put
into words (``allOf``, ``if``, ``const``, ...) stops the build, so the page never leaves a rule out silently.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from stack_builder.docs.mdtext import DocsError, anchor, code, prose, table, text

Schema = Mapping[str, Any]

# The keywords this page says in words; any other (but annotations named x-...) stops the build.
DESCRIBED = {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required",
             "additionalProperties", "propertyNames", "items", "minItems", "maxItems", "uniqueItems", "minLength",
             "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "enum", "oneOf",
             "minProperties", "maxProperties", "default", "examples", "deprecated"}
SCALARS = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean", "null": "null"}


@dataclass(frozen=True)
class Section:
    """A mapping of the spec: its key path (``images.<name>.model``) and its schema."""
    path: str
    schema: Schema

    @property
    def anchor(self) -> str:
        return anchor(self.path)


class SpecReference:
    """The reference of one schema: ``SpecReference(schema).markdown()``."""

    def __init__(self, schema: Schema) -> None:
        self.root = schema
        self.sections: list[Section] = []

    def resolve(self, node: Any, where: str) -> Schema:
        """``node`` with its ``$ref`` followed (keywords beside the ``$ref`` win); every keyword checked."""
        if not isinstance(node, Mapping):
            raise DocsError(f"{where}: a schema must be an object, not {node!r}")
        resolved: dict[str, Any] = dict(node)
        ref = resolved.get("$ref")
        if ref is not None:
            name = str(ref).removeprefix("#/$defs/")
            target = (self.root.get("$defs") or {}).get(name)
            if name == ref or target is None:
                raise DocsError(f"{where}: $ref {ref!r} names no definition under $defs")
            resolved = {**self.resolve(target, f"$defs.{name}"), **{k: v for k, v in resolved.items() if k != "$ref"}}
        unknown = sorted(k for k in resolved if k not in DESCRIBED and not str(k).startswith("x-"))
        if unknown:
            raise DocsError(f"{where}: the spec reference cannot describe the keyword(s) {', '.join(unknown)}; "
                            "teach scripts/stack_builder/docs/spec_page.py to")
        return resolved

    def child_section(self, path: str, node: Schema) -> Section | None:
        """The section of a key whose value is a mapping with keys of its own (directly, per item, per value)."""
        if "properties" in node:
            return Section(path, node)
        items = node.get("items")
        if isinstance(items, Mapping) and "properties" in self.resolve(items, path):
            return Section(f"{path}[]", self.resolve(items, path))
        values = node.get("additionalProperties")
        if isinstance(values, Mapping) and "properties" in self.resolve(values, path):
            return Section(f"{path}.<name>", self.resolve(values, path))
        return None

    def type_of(self, node: Schema, where: str, child: Section | None = None) -> str:
        """The type in words: ``string``, ``list of string``, ``map of name to integer``, a link to a section."""
        if "enum" in node:
            return "one of " + ", ".join(code(json.dumps(v)) for v in node["enum"])
        if "oneOf" in node:
            return " or ".join(self.type_of(self.resolve(alt, where), where, child) for alt in node["oneOf"])
        declared = node.get("type")
        types = [declared] if isinstance(declared, str) else list(declared or [])
        if not types and ("properties" in node or "additionalProperties" in node):
            types = ["object"]
        if not types:
            raise DocsError(f"{where}: a schema without a type the reference can name")
        words = []
        for name in types:
            if name == "array":
                items = self.resolve(node.get("items", {}), f"{where}[]")
                words.append("list of " + (self.type_of(items, f"{where}[]", child) if items else "anything"))
            elif name == "object":
                words.append(self.mapping_type(node, where, child))
            elif name in SCALARS:
                words.append(SCALARS[name])
            else:
                raise DocsError(f"{where}: unknown type {name!r}")
        return " or ".join(words)

    def mapping_type(self, node: Schema, where: str, child: Section | None) -> str:
        if child is not None and child.path == where:
            return f"[mapping](#{child.anchor})"
        values = node.get("additionalProperties")
        if isinstance(values, Mapping):
            inner = f"{where}.<name>"
            return "map of name to " + self.type_of(self.resolve(values, inner), inner, child)
        return "mapping"

    def notes(self, node: Schema, where: str) -> list[str]:
        """The constraints of one value, in words (each item's and each value's too)."""
        found = ["**Deprecated.**"] if node.get("deprecated") else []
        if "pattern" in node:
            found.append(f"Matches {code(node['pattern'])}.")
        found += _bounds(node)
        if node.get("uniqueItems"):
            found.append("No item twice.")
        names = node.get("propertyNames")
        if isinstance(names, Mapping) and "pattern" in names:
            found.append(f"Each name matches {code(names['pattern'])}.")
        for key, label in (("items", "Each item"), ("additionalProperties", "Each value")):
            inner = node.get(key)
            if isinstance(inner, Mapping) and "properties" not in self.resolve(inner, where):
                inner_notes = " ".join(self.notes(self.resolve(inner, where), where))
                if inner_notes:
                    found.append(f"{label}: {inner_notes[0].lower()}{inner_notes[1:]}")
        for alternative in node.get("oneOf", []):
            found += self.notes(self.resolve(alternative, where), where)
        if "default" in node:
            found.append(f"Default: {code(json.dumps(node['default']))}.")
        return found

    def rows(self, section: Section) -> list[list[str]]:
        required = set(section.schema.get("required", []))
        rows = []
        for key, raw in section.schema["properties"].items():
            where = f"{section.path}.{key}" if section.path != "spec.yml" else str(key)
            node = self.resolve(raw, where)
            child = self.child_section(where, node)
            if child is not None:
                self.sections.append(child)
            said = prose(str(node.get("description", "")))
            said += "." if said and not said.endswith((".", ")")) else ""
            description = " ".join([said, *dict.fromkeys(self.notes(node, where))]).strip()
            rows.append([code(str(key)), self.type_of(node, where, child), "yes" if key in required else "",
                         description])
        return rows

    def section_markdown(self, section: Section) -> str:
        title = "Top-level keys" if section.path == "spec.yml" else code(section.path)
        lines = [f"## {title} {{#{section.anchor}}}", ""]
        description = section.schema.get("description")
        if description and section.path != "spec.yml":
            lines += [prose(str(description)), ""]
        lines.append(table(["Key", "Type", "Required", "Description"], self.rows(section)))
        if section.schema.get("additionalProperties") is False:
            lines += ["", "No other key is allowed."]
        return "\n".join(lines)

    def markdown(self) -> str:
        top = self.resolve(self.root, "spec.yml")
        if "properties" not in top:
            raise DocsError("the schema declares no top-level properties")
        self.sections = [Section("spec.yml", top)]
        intro = [prose(str(top.get("description", "")))]
        if "x-spec-version" in top:
            intro.append(f"This reference is for spec version {text(str(top['x-spec-version']))}.")
        parts = [" ".join(intro)]
        done = 0
        while done < len(self.sections):  # each section's rows add the sections below it
            parts.append(self.section_markdown(self.sections[done]))
            done += 1
        return "\n\n".join(parts) + "\n"


def _bounds(node: Schema) -> list[str]:
    """Lengths, sizes and ranges in words: ``Not empty.``, ``From 1 to 86400.``, ``At most 20 items.``"""
    found = []
    for low, high, unit in (("minLength", "maxLength", "characters"), ("minItems", "maxItems", "items"),
                            ("minProperties", "maxProperties", "keys")):
        if node.get(low) == 1:
            found.append("Not empty.")
        elif low in node:
            found.append(f"At least {node[low]} {unit}.")
        if high in node:
            found.append(f"At most {node[high]} {unit}.")
    if "minimum" in node and node.get("maximum") == node["minimum"]:
        found.append(f"Exactly {node['minimum']}.")
    elif "minimum" in node and "maximum" in node:
        found.append(f"From {node['minimum']} to {node['maximum']}.")
    else:
        found += [f"{label} {node[key]}." for key, label in (("minimum", "At least"), ("maximum", "At most"))
                  if key in node]
    found += [f"{label} {node[key]}." for key, label in (("exclusiveMinimum", "Greater than"),
                                                         ("exclusiveMaximum", "Less than")) if key in node]
    return found


def spec_reference(schema: Schema) -> str:
    """The reference page's body for ``schema``."""
    return SpecReference(schema).markdown()


def property_names(schema: Schema) -> set[str]:
    """Every key name the schema declares, at every depth (for the tests: each must be on the page)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            props = node.get("properties")
            if isinstance(props, Mapping):
                found.update(str(k) for k in props)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found
