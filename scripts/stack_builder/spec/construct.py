"""The immutable values of a spec, made from its checked YAML: nothing here validates or reports."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from stack_builder.spec import budgets
from stack_builder.spec.images import DEFAULT_PLATFORMS, ContentTag, DriftSettings, ImageSpec, InfoCmd, ModelSpec
from stack_builder.spec.references import Repository
from stack_builder.spec.timeouts import DEFAULT_TIMEOUTS


def info_cmds(data: Mapping[str, Any]) -> dict[str, InfoCmd]:
    return {key: InfoCmd(key, str(entry.get("description", key)), entry["command"])
            for key, entry in (data.get("all_info_cmds") or {}).items()}


def recipes(raw: Mapping[str, Any], context: Path) -> tuple[Path, ...]:
    """The image's Dockerfiles, in the order they are tried (``dockerfile:`` is one name or a list)."""
    declared = raw.get("dockerfile", "Dockerfile")
    return tuple(context / r for r in (declared if isinstance(declared, list) else [declared]))


def build_args(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Build arguments as Docker takes them: text, booleans as YAML writes them (numbers read as floats are
    refused by ``checks.build_args`` and left out)."""
    return tuple((arg, str(value).lower() if isinstance(value, bool) else str(value))
                 for arg, value in (raw.get("build_args") or {}).items() if not isinstance(value, float))


def model(raw: Mapping[str, Any] | None, context: Path) -> ModelSpec | None:
    if raw is None:
        return None
    return ModelSpec(
        columns=tuple((str(k), str(v)) for k, v in raw["columns"].items()),
        examples=context / "examples",
        command=tuple(raw.get("command") or ("{input}", "{output}")),
        fixed=bool(raw.get("fixed", True)),
        tolerance=float(raw.get("tolerance", 0.1)),
        drift=DriftSettings(**(raw.get("drift") or {})),
    )


def image(name: str, raw: Mapping[str, Any], *, repository: Repository, context: Path,
          dockerfiles: tuple[Path, ...], timeouts: Mapping[str, int],
          stack_budget: Mapping[str, Any] | None = None) -> ImageSpec:
    """One image; ``timeouts`` and ``stack_budget`` are the stack's, which the image's own override."""
    return ImageSpec(
        name=name,
        repository=repository,
        parent=raw.get("depend_on"),
        context=context,
        dockerfile=dockerfiles[0],
        recipes=dockerfiles if len(dockerfiles) > 1 else (),
        build_args=build_args(raw),
        info_cmds=tuple(raw.get("info_cmds") or ()),
        integration_tests=bool(raw.get("integration_tests", False)),
        prune=bool(raw.get("prune", False)),
        prepull=bool(raw.get("prepull", True)),
        secrets={str(k): str(v) for k, v in (raw.get("secrets") or {}).items()},
        platforms=tuple(raw.get("platforms") or DEFAULT_PLATFORMS),
        require_all_platforms=bool(raw.get("require_all_platforms", True)),
        gpu=bool(raw.get("gpu", False)),
        change_ignore=tuple(raw.get("change_ignore") or ()),
        model=model(raw.get("model"), context),
        timeouts={**DEFAULT_TIMEOUTS, **timeouts, **(raw.get("timeouts") or {})},
        content_tags=tuple(ContentTag(str(t["name"]), str(t["command"])) for t in raw.get("content_tags") or ()),
        budget=budgets.merged(stack_budget, raw.get("budget")),
        raw=raw,
    )
