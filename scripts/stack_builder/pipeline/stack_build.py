"""A whole `build`: plan under the stack's lock, then execute the plan, then record it in the wiki."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from stack_builder import signals
from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine import containers
from stack_builder.engine.client import Engine
from stack_builder.engine.build import find_cli
from stack_builder.errors import RegistryError, StackError
from stack_builder.pipeline import build_run, lock, planning
from stack_builder.pipeline.context import BuildContext, Progress
from stack_builder.pipeline.planning import Planned, SelectionOptions
from stack_builder.plan.plan import Plan
from stack_builder.plan.revision import Revision
from stack_builder.records.files import utc_now, write_lines
from stack_builder.kinds import Reason, ReasonKind, Status
from stack_builder.records.runs import RunKind
from stack_builder.records.report import BuildReport, ImageResult
from stack_builder.records.wiki import Wiki
from stack_builder.registry.signing import Signing, cosign_binary
from stack_builder.registry.lookups import Lookups
from stack_builder.spec.stack_spec import Spec
from stack_builder.version import version as tool_version

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    selection: SelectionOptions
    workers: int
    push: bool
    reuse: bool = True  # an image whose input key is already published is retagged, not built
    timeouts: Mapping[str, int] = field(default_factory=dict)  # --test-timeout and the like, over the spec's
    observer: Callable[[str, str, int, int], None] | None = None  # (image, step, done, total): a live display
    allow_over_budget: bool = False  # push an image over its budget (an emergency), with a warning


def build(config: Config, options: BuildOptions) -> BuildReport:
    """Plan and run the build; the report says what happened to every image.

    A SIGINT or SIGTERM stops it: nothing new starts, nothing more is pushed, the containers of the
    run are removed, and every image not finished is reported ``interrupted``.
    """
    if options.workers < 1:
        raise StackError(f"--workers must be at least 1, not {options.workers}")
    run_id = uuid.uuid4().hex[:12]
    engines: list[Engine] = []

    def remove_containers() -> None:
        for engine in engines[:1]:
            removed = containers.remove_labelled(engine, run_id)
            if removed:
                LOGGER.info("removed %d container(s) of run %s: %s", len(removed), run_id, ", ".join(removed))

    # (labels every container of the run, test processes' included)
    with containers.run_labelled(run_id):
        try:
            with signals.handling(on_stop=remove_containers):
                return _build(config, options, run_id, engines)
        finally:
            remove_containers()


def _build(config: Config, options: BuildOptions, run_id: str, engines: list[Engine]) -> BuildReport:
    started = time.monotonic()
    registry = config.registry_client()
    credentials = registry.credentials
    with lock.stack_lock(config.artifacts / ".build.lock"):
        selected = planning.select(config, options.selection)
        if options.push:
            try:
                registry.ping()  # before building anything: a run that cannot publish stops here
            except RegistryError as exc:
                raise StackError(f"{exc}. Start it (`bash setup.sh env` starts the local one), name another "
                                 "with --registry, or build without pushing: --no-push") from None
        lookups = planning.reach(registry, patient=False, consequence="not checking which images it lacks "
                                 "(--no-push), and parents come from the local engine") \
            if not options.push else Lookups(registry)
        engine = planning.try_engine(pool_size=options.workers + 4)
        planned = planning.resolve(config, selected, lookups=lookups, engine=engine)
        plan = planned.plan
        if plan.images:
            engine = engine or engine_client.connect(pool_size=options.workers + 4)  # says why it cannot
            engines.append(engine)
            find_cli()  # no BuildKit-capable client: say what to install, before anything is built
        check_secrets(planned.spec, plan.images, config.settings.environment)
        signing = _signing(config) if options.push else None
        write_lines(config.artifacts / "IMAGES_CHANGED", list(plan.images))
        report = initial_report(planned.spec, plan, revision=planned.revision, registry=config.registry,
                                push=options.push)
        report.run_id = run_id
        if not plan.images:
            report.finished = report.started
            report.save(config.artifacts)
            LOGGER.info("nothing to build: no image changed since %s%s (%.1fs)", plan.base_source,
                        f", and registry {config.registry} has every image" if lookups else "",
                        time.monotonic() - started)
            return report
        LOGGER.info("building %d of %d images on tag %s -> %s%s", len(plan.images), len(planned.spec.images),
                    plan.tag, config.registry, "" if options.push else " (no push)")
        pages = Wiki(config.wiki_dir) if options.push else None  # the wiki describes published images only
        if engine is None:  # (connected above; this keeps the type checker informed)
            raise StackError("no Docker engine answers")
        ctx = BuildContext(spec=planned.spec, plan=plan, revision=planned.revision, registry_host=config.registry,
                           push=options.push, artifacts=config.artifacts, engine=engine, registry=registry,
                           credentials=credentials, wiki=pages, lookups=lookups,
                           reuse=options.reuse and options.push and lookups is not None, run_id=run_id,
                           timeouts=options.timeouts, signing=signing, allow_over_budget=options.allow_over_budget,
                           progress=Progress(len(plan.images), options.observer), settings=config.settings,
                           native=engine_client.native_platform(engine))
        result = build_run.execute(ctx, report, workers=options.workers)
        _name_engine(result, config.settings.engine.name)
        result.registry_stats = {**registry.stats, "push_retries": ctx.push_policy.retried}
        result.save(config.artifacts)
        if pages is not None:
            _record_build(pages, planned, result)
        statuses = [r.status for r in result.images.values()]
        LOGGER.info("build finished in %.1fs: %d built, %d reused, %d failed or skipped; report: %s",
                    time.monotonic() - started, statuses.count(Status.BUILT), statuses.count(Status.REUSED),
                    len(result.failed()), config.artifacts / "build-report.json")
        return result


def _name_engine(report: BuildReport, name: str) -> None:
    """In a job of `build --engines` (``name`` set): which engine built (or failed) each platform."""
    if name:
        report.images = {image: replace(r, engines={p: name for p in [*r.platforms_built, *r.platforms_failed]})
                         for image, r in report.images.items()}


def _signing(config: Config) -> Signing | None:
    """cosign for the run's pushes, when a key is set; a broken signing set-up stops the run here."""
    signing = Signing.from_settings(config.settings)
    if signing is None:
        return None
    if not signing.can_sign:
        LOGGER.warning("only a public key is set (%s): this build pushes unsigned images, which a promotion "
                       "that verifies will refuse; set STACK_SIGNING_KEY to sign", signing.describe())
        return None
    cosign_binary()
    return signing


def check_secrets(spec: Spec, names: tuple[str, ...], environment: Mapping[str, str]) -> None:
    """Every build secret the plan needs has a value in ``environment``, before anything is built."""
    missing = [f"{spec.path.name}: images.{name}.secrets.{sid}: ${var} is unset or empty"
               for name in names for sid, var in spec.images[name].secrets.items() if not environment.get(var)]
    if missing:
        raise StackError("build secrets have no value, so nothing was built:\n  " + "\n  ".join(missing) +
                         "\n  Export each variable (in CI, from the repository's secrets) and build again.")


def initial_report(spec: Spec, plan: Plan, *, revision: Revision, registry: str, push: bool) -> BuildReport:
    why = f"no changes since {plan.base[:12]}" if plan.base else f"not selected ({plan.base_source})"
    images = {name: ImageResult(Status.PENDING, plan.reasons[name]) if name in plan.reasons
              else ImageResult(Status.UNCHANGED, Reason(ReasonKind.NOT_SELECTED, why)) for name in spec.images}
    return BuildReport(commit=revision.commit, branch=revision.branch, tag=plan.tag, registry=registry, pushed=push,
                       base=plan.base, base_source=plan.base_source, images=images, started=utc_now(),
                       builder=tool_version())


def _record_build(pages: Wiki, planned: Planned, result: BuildReport) -> None:
    built = [{"name": n, "tag": result.tag, "page": r.manifest,
              **({"reused_from": r.reused_from} if r.status is Status.REUSED else {})}
             for n, r in result.images.items() if r.status.published]
    if built:
        pages.record_build({"commit": planned.revision.commit, "commit_url": planned.revision.commit_url(),
                            "branch": planned.revision.branch, "tag": result.tag, "time": result.started,
                            "kind": RunKind.BUILD.value, "images": built})
    pages.record_models(planned.spec, result.as_dict())
    pages.render(planned.spec)

