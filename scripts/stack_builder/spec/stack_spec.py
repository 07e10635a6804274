"""``spec.yml``: load, validate (all problems, each with file, line and key path), and model.

The graph of images lives here and only here; everything else derives from it.
"""
from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import jsonschema

from stack_builder.spec import yamlsource
from stack_builder.errors import SpecError, StackError, shown
from stack_builder.spec.references import Repository, parse_repository

SPEC_NAMES = ("spec.yml", "images/spec.yml")
PREFIX_RE = re.compile(r"^\d{4}\.[1-4]$")
DEFAULT_PLATFORMS = ("linux/amd64",)
MAX_SPEC_BYTES = 1024 * 1024
MAX_IMAGE_KEY = 100  # <image>-<tag of up to 128>.json must stay under the 255 bytes a file name may have
MAX_DRIFT_SAMPLE = 100_000  # model runs on this many inputs at most (a drift gate's sample)  # a spec of a thousand images is a few hundred kB
# Seconds a check may run: the image's tests, each model check container, its GPU tests, its info commands.
DEFAULT_TIMEOUTS = {"tests": 1800, "model": 900, "gpu_tests": 3600, "info_cmds": 600}


def check_timeouts(values: Mapping[str, int]) -> dict[str, int]:
    """Timeouts from the command line ({kind: seconds}, 0 for "the spec's"), checked; they override the spec."""
    found: dict[str, int] = {}
    for kind, seconds in values.items():
        if not seconds:
            continue
        if not 1 <= seconds <= 86400:
            option = "--test-timeout" if kind == "tests" else f"--{kind.removesuffix('_cmds')}-timeout"
            raise StackError(f"{option} {seconds}: give a whole number of seconds from 1 to 86400")
        found[kind] = seconds
    return found


@dataclass(frozen=True)
class InfoCmd:
    key: str
    description: str
    command: str


@dataclass(frozen=True)
class DriftSettings:
    """How a model image is compared with its current stable (Hoeffding bound, union over reuses)."""

    epsilon: float = 0.05
    delta: float = 0.01
    reuses: int = 1
    tolerance: float = 0.1
    max_disagreement: float = 0.05

    def sample_size(self) -> int:
        """n = ceil(ln(H/delta) / (2 epsilon^2)): the rate is within epsilon with confidence 1-delta."""
        return math.ceil(math.log(self.reuses / self.delta) / (2 * self.epsilon ** 2))


@dataclass(frozen=True)
class ModelSpec:
    """A model image: it turns an input CSV into an output CSV with declared columns."""

    columns: tuple[tuple[str, str], ...]
    examples: Path  # images/<name>/examples
    command: tuple[str, ...] = ("{input}", "{output}")  # arguments to the image's entrypoint
    fixed: bool = True
    tolerance: float = 0.1
    drift: DriftSettings = DriftSettings()


@dataclass(frozen=True)
class ContentTag:
    """A tag from what is inside the image: ``command``'s trimmed output fills ``{}`` in ``name``."""

    name: str
    command: str

    def fill(self, output: str) -> str:
        return self.name.replace("{}", output.strip())


@dataclass(frozen=True)
class ImageSpec:
    """One image of the stack, as declared."""

    name: str
    repository: Repository
    parent: str | None
    context: Path  # images/<name>/, absolute
    dockerfile: Path  # absolute; the first recipe when there are several
    build_args: tuple[tuple[str, str], ...] = ()
    info_cmds: tuple[str, ...] = ()
    integration_tests: bool = False
    prune: bool = False
    prepull: bool = True
    secrets: Mapping[str, str] = field(default_factory=dict)  # build secret id -> environment variable
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    require_all_platforms: bool = True
    gpu: bool = False
    change_ignore: tuple[str, ...] = ()
    model: ModelSpec | None = None
    timeouts: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMEOUTS))  # every kind, in seconds
    content_tags: tuple[ContentTag, ...] = ()
    recipes: tuple[Path, ...] = ()  # several Dockerfiles, tried in order (empty: just ``dockerfile``)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Spec:
    """A validated stack: images in file order, with roots and shared settings."""

    path: Path
    stack_dir: Path
    images: Mapping[str, ImageSpec]
    roots: tuple[str, ...]
    tag_prefix: str
    all_info_cmds: Mapping[str, InfoCmd]
    change_ignore: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def require(self, names: Iterable[str], *, option: str = "--image") -> None:
        """Raise ``StackError`` naming each unknown image, with a did-you-mean."""
        unknown = [name for name in names if name not in self.images]
        if unknown:
            tips = ", ".join(f"'{n}'" + (f" (did you mean '{h[0]}'?)" if (h := difflib.get_close_matches(
                n, list(self.images), n=1)) else "") for n in unknown)
            raise StackError(f"{option} names no image in {self.path.name}: {tips}; images are: "
                             f"{', '.join(self.images)}")

    def children(self, name: str) -> list[str]:
        return [i.name for i in self.images.values() if i.parent == name]

    def ancestors(self, name: str) -> list[str]:
        """Parent first, root last."""
        chain: list[str] = []
        parent = self.images[name].parent
        while parent is not None:
            chain.append(parent)
            parent = self.images[parent].parent
        return chain


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


def load_spec(stack_dir: Path, *, check_files: bool = True) -> Spec:
    """Find, parse and validate the stack's spec. Raises ``SpecError`` listing every problem."""
    path = find_spec(stack_dir)
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError([f"{path.name}: {size:,} bytes is more than a spec may be ({MAX_SPEC_BYTES:,}): refused"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path.name}: not UTF-8 text ({shown(str(exc))})"]) from None
    return parse_spec(text, path=path, stack_dir=stack_dir, check_files=check_files)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("spec.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def parse_spec(text: str, *, path: Path, stack_dir: Path, check_files: bool = True) -> Spec:
    """Validate spec text. ``check_files`` also requires each image's Dockerfile to exist."""
    display = _display_path(path, stack_dir)
    try:
        located = yamlsource.load(text)
    except yamlsource.YamlSyntaxError as exc:
        where = f"{display}:{exc.line}" if exc.line else display
        raise SpecError([f"{where}: YAML syntax error: {exc}"]) from None

    problems = _Problems(display, located)
    for dup_path, line in located.duplicates:
        problems.add(dup_path, f"duplicate key '{dup_path[-1]}' (an earlier one at line "
                               f"{located.lines.get(dup_path, '?')} would be silently replaced)", line=line)
    data = located.data
    if not isinstance(data, dict):
        problems.add((), "the spec must be a mapping with an 'images' key")
        raise SpecError(problems.messages)
    _check_schema(data, problems)
    if problems.messages:
        # Semantic checks assume the shapes the schema guarantees.
        raise SpecError(problems.messages)

    spec = _build(data, path=path, stack_dir=stack_dir, problems=problems, check_files=check_files)
    if spec is None or problems.messages:
        raise SpecError(problems.messages)
    return spec


class _Problems:
    def __init__(self, display: str, located: yamlsource.Located) -> None:
        self.display = display
        self.located = located
        self.messages: list[str] = []

    def add(self, path: Iterable[str | int], message: str, *, line: int | None = None) -> None:
        key_path = tuple(path)
        line = line or self.located.line_of(key_path)
        where = f"{self.display}:{line}" if line else self.display
        dotted = shown(_dotted(key_path))
        self.messages.append(f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}")


def _dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _display_path(path: Path, stack_dir: Path) -> str:
    try:
        return str(path.relative_to(stack_dir))
    except ValueError:
        return str(path)


_TYPE_NAMES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a mapping", "array": "a list", "null": "empty"}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else type(value).__name__


def _check_schema(data: dict[str, Any], problems: _Problems) -> None:
    validator = jsonschema.Draft202012Validator(schema())
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        where = tuple(error.absolute_path)
        kind = error.validator
        if kind == "additionalProperties" and isinstance(error.instance, dict):
            allowed = sorted(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    hint = difflib.get_close_matches(str(key), allowed, n=1)
                    tip = f" (did you mean '{hint[0]}'?)" if hint else (
                        f"; allowed keys: {', '.join(allowed)}" if allowed else "")
                    problems.add((*where, key), f"unknown key '{shown(key)}'{tip}")
        elif kind == "type":
            wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
            names = " or ".join(_TYPE_NAMES.get(str(w), str(w)) for w in wanted)
            problems.add(where, f"must be {names}, not {_json_type(error.instance)} ({shown(error.instance)})")
        elif kind == "required":
            missing = [k for k in error.validator_value if k not in error.instance]
            for key in missing:
                problems.add(where, f"missing required key '{key}'")
        elif kind == "propertyNames":
            problems.add((*where, str(error.instance)),
                         f"'{shown(error.instance)}' is not an allowed name here (pattern {error.schema.get('pattern')})")
        elif kind == "oneOf" and where and where[-1] == "root":
            problems.add(where, "must be an image name or a list of image names")
        elif kind == "enum":
            choices = ", ".join(str(c) for c in error.validator_value)
            problems.add(where, f"'{shown(error.instance)}' is not one of: {choices}")
        elif kind == "pattern":
            problems.add(where, f"'{shown(error.instance)}' does not match the pattern {error.validator_value}")
        elif kind in {"minItems", "minProperties", "minLength"}:
            problems.add(where, "must not be empty")
        else:
            problems.add(where, shown(error.message, 240))


def _build(data: dict[str, Any], *, path: Path, stack_dir: Path, problems: _Problems,
           check_files: bool) -> Spec | None:
    images_raw: dict[str, dict[str, Any]] = data["images"]
    names = list(images_raw)
    prefix = _tag_prefix(data["tag"]["prefix"], problems)
    info_cmds = {
        key: InfoCmd(key, str(entry.get("description", key)), entry["command"])
        for key, entry in (data.get("all_info_cmds") or {}).items()
    }

    images: dict[str, ImageSpec] = {}
    repositories: dict[str, str] = {}
    for name, raw in images_raw.items():
        where = ("images", name)
        if len(name) > MAX_IMAGE_KEY:
            problems.add(where, f"the image name '{shown(name)}' is {len(name)} characters, more than "
                                f"{MAX_IMAGE_KEY}: its logs, records and pages are files named after it")
            continue
        try:
            repository = parse_repository(raw["image_name"])
        except StackError as exc:
            problems.add((*where, "image_name"), str(exc))
            continue
        other = repositories.get(repository.path)
        if other is not None:
            problems.add((*where, "image_name"),
                         f"'{shown(raw['image_name'])}' is also the image_name of '{other}': each image needs its own")
        repositories.setdefault(repository.path, name)

        parent = raw.get("depend_on")
        if parent is not None and parent not in images_raw:
            hint = difflib.get_close_matches(parent, names, n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else f"; images are: {', '.join(names)}"
            problems.add((*where, "depend_on"), f"unknown parent '{shown(parent)}'{tip}")
        if parent == name:
            problems.add((*where, "depend_on"), "an image cannot depend on itself")

        for index, key in enumerate(raw.get("info_cmds") or []):
            if key not in info_cmds:
                hint = difflib.get_close_matches(key, list(info_cmds), n=1)
                tip = f" (did you mean '{hint[0]}'?)" if hint else ""
                problems.add((*where, "info_cmds", index),
                             f"unknown info command '{shown(key)}'{tip}: define it under all_info_cmds")

        build_args = []
        for arg, value in (raw.get("build_args") or {}).items():
            if isinstance(value, float):
                problems.add((*where, "build_args", arg),
                             f"{shown(value)} was read as a number, which can lose digits (3.10 becomes 3.1): "
                             f"quote it, e.g. {arg}: \"{value}\"")
                continue
            build_args.append((arg, str(value).lower() if isinstance(value, bool) else str(value)))

        context = stack_dir / "images" / name
        declared = raw.get("dockerfile", "Dockerfile")
        recipes = tuple(context / r for r in (declared if isinstance(declared, list) else [declared]))
        dockerfile = recipes[0]
        confined = _confine(problems, where, stack_dir, [
            *(("dockerfile" if "dockerfile" in raw else "", recipe) for recipe in recipes), ("", context),
            ("integration_tests" if raw.get("integration_tests") else "", context / "integration_tests"),
            ("", context / "test"), ("", context / "test_gpu"), ("model" if raw.get("model") else "", context / "examples"),
            *(("model", context / "examples" / f) for f in ("input.csv", "output.csv"))])
        if not confined:
            continue
        for recipe in recipes:
            if check_files and not recipe.is_file():
                rel = _display_path(recipe, stack_dir)
                problems.add(where, f"no Dockerfile at {rel}: create it, or point 'dockerfile:' at the file "
                                    f"(relative to images/{name}/)")

        content_tags = tuple(ContentTag(str(t["name"]), str(t["command"])) for t in raw.get("content_tags") or ())
        for index, content in enumerate(content_tags):
            if content.name.count("{}") != 1:
                problems.add((*where, "content_tags", index, "name"),
                             f"'{shown(content.name)}' must hold {{}} exactly once, where the command's output goes "
                             "(e.g. python-{})")
        platforms = tuple(raw.get("platforms") or DEFAULT_PLATFORMS)
        if len(set(platforms)) != len(platforms):
            problems.add((*where, "platforms"), "lists a platform twice")

        images[name] = ImageSpec(
            name=name,
            repository=repository,
            parent=parent,
            context=context,
            dockerfile=dockerfile,
            recipes=recipes if len(recipes) > 1 else (),
            build_args=tuple(build_args),
            info_cmds=tuple(raw.get("info_cmds") or ()),
            integration_tests=bool(raw.get("integration_tests", False)),
            prune=bool(raw.get("prune", False)),
            prepull=bool(raw.get("prepull", True)),
            secrets={str(k): str(v) for k, v in (raw.get("secrets") or {}).items()},
            platforms=platforms,
            require_all_platforms=bool(raw.get("require_all_platforms", True)),
            gpu=bool(raw.get("gpu", False)),
            change_ignore=tuple(raw.get("change_ignore") or ()),
            model=_model(raw.get("model"), context, where, problems, check_files),
            timeouts={**DEFAULT_TIMEOUTS, **(data.get("timeouts") or {}), **(raw.get("timeouts") or {})},
            content_tags=content_tags,
            raw=raw,
        )

    _confine(problems, (), stack_dir, [("", stack_dir / "images" / "tests_common")])
    _check_cycles(images_raw, problems)
    roots = _roots(data.get("root"), images_raw, problems)
    if problems.messages or prefix is None:
        return None
    return Spec(
        path=path,
        stack_dir=stack_dir,
        images=images,
        roots=roots,
        tag_prefix=prefix,
        all_info_cmds=info_cmds,
        change_ignore=tuple(data.get("change_ignore") or ()),
        raw=data,
    )


def _confine(problems: _Problems, where: tuple[str, ...], stack_dir: Path,
             paths: Iterable[tuple[str, Path]]) -> bool:
    """Every path (with the key that names it, "" for one the layout implies) must resolve, symlinks followed,
    inside the stack folder: a spec must not make the tool read, build or publish files from elsewhere."""
    root = stack_dir.resolve()
    ok = True
    for key, path in paths:
        try:
            resolved: Path | None = path.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            resolved = None
        if resolved is not None and (resolved == root or root in resolved.parents):
            continue
        problems.add((*where, key) if key else where,
                     f"'{shown(_display_path(path, stack_dir))}' resolves to "
                     f"{shown(str(resolved or '(a symlink loop)'))}, outside the stack folder {shown(str(root))}: "
                     "every file of a stack (Dockerfile, build context, tests, model examples) must be inside it")
        ok = False
    return ok


def _model(raw: Mapping[str, Any] | None, context: Path, where: tuple[str, ...], problems: _Problems,
           check_files: bool) -> ModelSpec | None:
    if raw is None:
        return None
    model = ModelSpec(
        columns=tuple((str(k), str(v)) for k, v in raw["columns"].items()),
        examples=context / "examples",
        command=tuple(raw.get("command") or ("{input}", "{output}")),
        fixed=bool(raw.get("fixed", True)),
        tolerance=float(raw.get("tolerance", 0.1)),
        drift=DriftSettings(**(raw.get("drift") or {})),
    )
    if model.drift.sample_size() > MAX_DRIFT_SAMPLE:
        problems.add((*where, "model", "drift"), f"epsilon {model.drift.epsilon}, delta {model.drift.delta} and "
                     f"reuses {model.drift.reuses} need {model.drift.sample_size():,} samples, more than "
                     f"{MAX_DRIFT_SAMPLE:,}: allow a larger epsilon or delta")
    if not any("{input}" in part for part in model.command) or not any("{output}" in part for part in model.command):
        problems.add((*where, "model", "command"), "must contain {input} and {output}")
    needed = ["input.csv"] + (["output.csv"] if model.fixed else [])
    for name in needed if check_files else []:
        if not (model.examples / name).is_file():
            why = " (the reference output of a fixed model)" if name == "output.csv" else ""
            problems.add((*where, "model"), f"missing {context.name}/examples/{name}{why}: add it next to the "
                                            "Dockerfile")
    return model


def _tag_prefix(value: Any, problems: _Problems) -> str | None:
    # YAML reads an unquoted 2024.1 as a number; its repr is the text the user wrote.
    text = repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, bool) or not PREFIX_RE.fullmatch(text):
        problems.add(("tag", "prefix"), f"'{shown(text)}' is not a quarter: use YYYY.Q with Q from 1 to 4, "
                                        "e.g. prefix: \"2024.1\"")
        return None
    return text


def _check_cycles(images_raw: Mapping[str, Mapping[str, Any]], problems: _Problems) -> None:
    reported: set[str] = set()
    for start in images_raw:
        seen: list[str] = []
        current: str | None = start
        while current is not None and current in images_raw and current not in seen:
            seen.append(current)
            current = images_raw[current].get("depend_on")
        if current is not None and current in seen and current == start and start not in reported:
            loop = seen[seen.index(current):] + [current]
            reported.update(loop)
            problems.add(("images", start, "depend_on"), "dependency cycle: " + " -> ".join(loop))


def _roots(value: Any, images_raw: Mapping[str, Mapping[str, Any]], problems: _Problems) -> tuple[str, ...]:
    actual = [name for name, raw in images_raw.items() if raw.get("depend_on") is None]
    if value is None:
        return tuple(actual)
    declared = [value] if isinstance(value, str) else list(value)
    for index, name in enumerate(declared):
        where: tuple[str | int, ...] = ("root",) if isinstance(value, str) else ("root", index)
        if name not in images_raw:
            hint = difflib.get_close_matches(name, list(images_raw), n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else ""
            problems.add(where, f"unknown image '{shown(name)}'{tip}")
        elif images_raw[name].get("depend_on") is not None:
            problems.add(where, f"'{name}' depends on '{images_raw[name]['depend_on']}', so it is not a root")
    return tuple(actual)
