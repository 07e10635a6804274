"""`build`: build, test, then push the planned images, parents first."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from stack_builder.apps import live
from stack_builder.apps.runtime import Failed, run_task
from stack_builder.config import Config, make_config
from stack_builder.errors import StackError
from stack_builder.pipeline.planning import SelectionOptions
from stack_builder.pipeline.stack_build import BuildOptions, build
from stack_builder.records.report import BuildReport
from stack_builder.registry.credentials import redact_all
from stack_builder.settings import CiSettings
from stack_builder.spec.stack_spec import check_timeouts


def main(base_ref: str, all_images: bool, image: list[str], workers: int, registry: str, no_push: bool,
         no_reuse: bool, test_timeout: int, model_timeout: int, info_timeout: int,
         platform: str, refresh_base: bool = False, allow_over_budget: bool = False,
         engines: str = "") -> bool | Failed:
    def work() -> bool:
        config = make_config(registry=registry)
        if engines:
            return on_engines(config, engines, SelectionOptions(base_ref=base_ref, all_images=all_images,
                                                                 images=tuple(image), refresh_base=refresh_base),
                              workers=workers, no_push=no_push, platform=platform,
                              extra=_job_options(no_reuse, test_timeout, model_timeout, info_timeout,
                                                 allow_over_budget))
        options = BuildOptions(selection=SelectionOptions(base_ref=base_ref, all_images=all_images,
                                                          images=tuple(image), platform=platform,
                                                          refresh_base=refresh_base),
                               workers=workers, push=not no_push, reuse=not no_reuse,
                               allow_over_budget=allow_over_budget,
                               timeouts=check_timeouts({"tests": test_timeout, "model": model_timeout,
                                                        "info_cmds": info_timeout}))
        if live.wanted(config.settings.ci):  # a terminal: one live line per image in flight
            with live.LiveProgress() as progress:
                report = build(config, replace(options, observer=progress.observe))
        else:
            report = build(config, options)
        github_actions(report, config.settings.ci)
        print(report.table())
        return not report.failed()

    return run_task(work)


def on_engines(config: Config, engines: str, selection: SelectionOptions, *, workers: int, no_push: bool,
               platform: str, extra: tuple[str, ...]) -> bool:
    """`build --engines FILE`: the run over several engines; its table of images, platforms and engines."""
    from stack_builder.farm.run import FarmOptions, build_on_engines, summary

    if no_push or platform:
        raise StackError("--engines builds each platform on its engine and assembles the indexes from the "
                         "registry: it cannot be combined with " + ("--no-push" if no_push else "--platform"))
    report = build_on_engines(config, FarmOptions(Path(engines), selection, workers, extra))
    print(summary(report))
    return bool(report.get("merged")) and not report.get("jobs_failed") and not report.get("interrupted")


def _job_options(no_reuse: bool, test_timeout: int, model_timeout: int, info_timeout: int,
                 allow_over_budget: bool) -> tuple[str, ...]:
    options = [f"--{name}={value}" for name, value in (("test-timeout", test_timeout),
                                                        ("model-timeout", model_timeout),
                                                        ("info-timeout", info_timeout)) if value]
    options += [flag for flag, wanted in (("--no-reuse", no_reuse), ("--allow-over-budget", allow_over_budget))
                if wanted]
    return tuple(options)


def github_actions(report: BuildReport, ci: CiSettings) -> None:
    """In GitHub Actions: each image's log folded in a ::group::, and the summary in the job's summary page."""
    if not ci.github_actions:
        return
    for name, result in report.images.items():
        log = Path(result.log) if result.log else None
        if log is not None and log.is_file():
            print(f"::group::{name}: {result.status} (log {log})")
            print(redact_all(log.read_text(encoding="utf-8", errors="replace")))
            print("::endgroup::")
    summary = ci.step_summary
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(report.markdown())
