"""Read YAML while keeping the line of every key, and refusing duplicate keys and alias bombs.

PyYAML silently keeps the last of two equal keys; a spec that says an image twice
must be an error, and every error must name its line. Aliases are counted before anything is
expanded: a document whose aliases expand past ``MAX_VALUES`` values ("billion laughs") is
refused at once, as are recursive aliases and nesting too deep to walk.

Where PyYAML was built with libyaml, libyaml's parser reads the text and PyYAML's own composer (in
Python, the same one the pure loader uses) makes the node graph from its events: ten times faster on a
spec of thousands of images, and the graph, its lines and every check on it are the same. Aliases are
never expanded while composing, so a bomb still costs nothing before ``_check_expansion`` refuses it. A
document libyaml refuses for any reason is read again by the pure loader, so that each error keeps its
own words and line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML without libyaml: the pure loader alone
    HAVE_LIBYAML = False
else:
    HAVE_LIBYAML = True

Path_ = tuple[str | int, ...]
MAX_VALUES = 100_000  # scalars, lists and mappings once aliases are expanded; real specs have a few thousand


@dataclass
class Located:
    """A parsed document plus the 1-based line of each key path."""

    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    duplicates: list[tuple[Path_, int]] = field(default_factory=list)

    def line_of(self, path: Path_) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        for cut in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:cut]))
            if line is not None:
                return line
        return None


class YamlSyntaxError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        super().__init__(message)


def load(text: str) -> Located:
    """Parse one YAML document, recording key lines and duplicate keys."""
    try:
        loader = yaml.SafeLoader(text)  # rejects unprintable characters already
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(None, str(exc).splitlines()[0]) from None
    try:
        try:
            node = _fast_node(text)
            if node is _UNREAD:
                node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            raise YamlSyntaxError(line, f"{exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise YamlSyntaxError(None, str(exc)) from None
        except RecursionError:
            raise YamlSyntaxError(None, "the document is nested too deeply to read") from None
        located = Located(data=None)
        if node is not None:
            located.lines[()] = node.start_mark.line + 1
            _check_expansion(node)
            try:
                located.data = _walk(loader, node, (), located)
            except yaml.MarkedYAMLError as exc:  # e.g. a tag no safe constructor knows
                mark = exc.problem_mark or exc.context_mark
                raise YamlSyntaxError(mark.line + 1 if mark else None, f"{exc.problem or exc.context}") from None
            except (yaml.YAMLError, TypeError, ValueError) as exc:
                raise YamlSyntaxError(None, str(exc).splitlines()[0]) from None
        return located
    finally:
        loader.dispose()


_UNREAD = yaml.Node("", "", None, None)  # the fast path could not read the text: the pure loader will


def _fast_node(text: str) -> yaml.Node | None:
    """The document's node graph composed from libyaml's events, or ``_UNREAD``."""
    if not HAVE_LIBYAML:
        return _UNREAD
    composer = _LibyamlComposer(text)
    try:
        return composer.get_single_node()
    except Exception:  # whatever libyaml objects to, the pure loader reads again and words in its own way
        return _UNREAD
    finally:
        composer.dispose()


if HAVE_LIBYAML:
    class _LibyamlComposer(Composer, CParser, Resolver):
        """libyaml's parser with PyYAML's composer: ``Composer`` comes first, so its ``get_single_node`` (in
        Python) is used, not the C one, and it composes exactly as the pure loader does."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            Resolver.__init__(self)


def _check_expansion(root: yaml.Node) -> None:
    """Count the values the document holds with aliases expanded, each node once (so a bomb costs nothing)."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        line = node.start_mark.line + 1
        if key in open_nodes:
            raise YamlSyntaxError(line, "an alias refers to the value that contains it (a recursive alias)")
        if depth > 200:
            raise YamlSyntaxError(line, "the document is nested more than 200 levels deep")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(item, depth + 1) for item in node.value)
        open_nodes.discard(key)
        if total > MAX_VALUES:
            raise YamlSyntaxError(line, f"aliases expand this value to more than {MAX_VALUES:,} values "
                                        "(an alias bomb?): refused; write the values out, or use fewer aliases")
        sizes[key] = total
        return total

    size(root, 0)


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, out: Located) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves '<<' merge keys as SafeLoader would
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            # Keys are kept as text so the document stays JSON-like for schema checks.
            key = str(loader.construct_object(key_node, deep=True))
            child = (*path, key)
            if key in result:
                out.duplicates.append((child, key_node.start_mark.line + 1))
            out.lines.setdefault(child, key_node.start_mark.line + 1)
            result[key] = _walk(loader, value_node, child, out)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = (*path, index)
            out.lines.setdefault(child, item.start_mark.line + 1)
            items.append(_walk(loader, item, child, out))
        return items
    return loader.construct_object(node, deep=True)
