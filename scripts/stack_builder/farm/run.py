"""`build --engines FILE`: the plan's jobs (an image on one platform), level by level, each on an engine of
its platform, then the multi-platform indexes assembled, as the CI fan-out does across runners.

Before anything is built every engine is asked whether it answers, and its own platform. During the run,
a job whose engine stops answering fails alone: the engine is given up, the job goes to another engine of
its pool if there is one, and the other platforms go on; `merge` then assembles each index from what was
built (``require_all_platforms`` decides), and the report names each engine, and the engines lost. A
second run rebuilds only what is missing (the registry has the rest).
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from stack_builder import signals
from stack_builder.config import Config
from stack_builder.defaults import REGISTRY_VAR
from stack_builder.engine import endpoints
from stack_builder.errors import EngineError, StackError
from stack_builder.farm import engines_file, jobs
from stack_builder.farm.dispatch import Load
from stack_builder.pipeline import planning
from stack_builder.records.files import read_json, write_json
from stack_builder.records.report import merge_reports, read_report

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class FarmOptions:
    engines: Path  # the --engines file
    selection: planning.SelectionOptions
    workers: int  # jobs at once per engine
    extra: tuple[str, ...] = ()  # options every job's build gets (timeouts, --no-reuse...)


@dataclass
class FarmRun:
    engines: engines_file.Engines
    natives: dict[str, str]  # engine -> its own platform
    load: Load
    failed: dict[jobs.Job, str]  # job -> why it did not finish


def build_on_engines(config: Config, options: FarmOptions) -> dict[str, Any]:
    """Build the plan over the engines; the run's report (also in artifacts/build-report.json)."""
    engines = engines_file.load(options.engines)
    natives = probe_all(engines)
    plan = planning.plan_only(config, options.selection).as_json()
    write_json(config.artifacts / "plan.json", plan)
    wanted = {job["platform"] for level in plan["levels"] for job in level}
    missing = sorted(wanted - engines.platforms())
    if missing:
        raise StackError(f"--engines {options.engines}: no engine builds {', '.join(missing)}, which the plan "
                         "needs: add an engine with that platform")
    folder = config.artifacts / "engines"
    shutil.rmtree(folder, ignore_errors=True)
    run = FarmRun(engines, natives, Load(workers=max(1, options.workers)), {})
    with signals.handling():
        for level in plan["levels"]:
            if signals.stopping():
                break
            _level(config, options, run, [jobs.Job(j["image"], j["platform"]) for j in level], folder, plan)
        _gather(config, folder)  # the jobs' records as one report, whatever `merge` then makes of them
        merged = _merge(config, folder) if not signals.stopping() else 1
    report = read_json(config.artifacts / "build-report.json", what="the run's report", default={}) or {}
    report["engines"] = {e.name: {"endpoint": e.endpoint.url, "platforms": list(e.platforms),
                                  "native": natives[e.name], "lost": run.load.lost.get(e.name)}
                         for e in engines.engines}
    report["jobs_failed"] = {f"{j.image} {j.platform}": why for j, why in run.failed.items()}
    report["merged"] = merged == 0
    if signals.stopping():
        report["interrupted"] = signals.signal_name()
    write_json(config.artifacts / "build-report.json", report)
    if merged == 0 and not signals.stopping():
        report["pages"] = _pages(config, run, report, plan.get("commit_tag") or plan["tag"])
        write_json(config.artifacts / "build-report.json", report)
    return report


def probe_all(engines: engines_file.Engines) -> dict[str, str]:
    """Each engine's own platform; StackError naming every engine that does not answer."""
    natives: dict[str, str] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def one(engine: engines_file.Engine) -> None:
        try:
            native = endpoints.probe(engine.endpoint)
        except EngineError as exc:
            with lock:
                errors.append(str(exc))
            return
        with lock:
            natives[engine.name] = native
        emulated = [p for p in engine.platforms if p != native]
        LOGGER.info("engine %s: %s%s", engine.name, native,
                    f" (builds {', '.join(emulated)} under emulation)" if emulated else "")

    threads = [threading.Thread(target=one, args=(engine,)) for engine in engines.engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise StackError("; ".join(sorted(errors)) + ". Nothing was built")
    return natives


def _level(config: Config, options: FarmOptions, run: FarmRun, level: Sequence[jobs.Job], folder: Path,
           plan: dict[str, Any]) -> None:
    pending = [job for job in level if not _parent_failed(job, run, plan)]
    for job in level:
        if job not in pending:
            run.failed[job] = "its parent was not built on this platform"
    running: dict[Future[int], tuple[jobs.Job, str]] = {}
    attempts: dict[jobs.Job, int] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(run.engines.engines) * run.load.workers)) as pool:
        while pending or running:
            for job in list(pending):
                names = [e.name for e in run.engines.pool(job.platform)]
                if not run.load.alive(names):
                    pending.remove(job)
                    run.failed[job] = f"every engine of {job.platform} was lost ({', '.join(names)})"
                    continue
                engine = run.load.choose(names, plan["parents"].get(job.image, {}).get("image"), job.platform)
                if engine is None or signals.stopping():
                    continue
                pending.remove(job)
                run.load.start(engine)
                attempts[job] = attempts.get(job, 0) + 1
                endpoint = next(e.endpoint for e in run.engines.engines if e.name == engine)
                future = pool.submit(jobs.run, job, endpoint, stack=config.stack_dir,
                                     folder=folder / engine / job.folder_name, registry=config.registry,
                                     environment=config.settings.environment, extra=options.extra)
                running[future] = (job, engine)
            if signals.stopping():
                pending.clear()
            if not running:
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                job, engine = running.pop(future)
                status = future.result()
                run.load.finish(engine, job.image, job.platform, status == 0)
                if status != 0:
                    _after_failure(run, job, engine, status, pending, attempts[job])


def _after_failure(run: FarmRun, job: jobs.Job, engine: str, status: int, pending: list[jobs.Job],
                   attempts: int) -> None:
    """A failed job: when its engine no longer answers, give the engine up and try the job elsewhere."""
    if signals.stopping():
        run.failed[job] = f"stopped by {signals.signal_name()} on engine {engine}"
        return
    endpoint = next(e.endpoint for e in run.engines.engines if e.name == engine)
    try:
        endpoints.probe(endpoint, timeout=10)
    except EngineError as exc:
        LOGGER.error("%s; it is given up for the rest of the run", exc)
        run.load.lost[engine] = str(exc)
        if attempts < 2 and run.load.alive([e.name for e in run.engines.pool(job.platform)]):
            LOGGER.warning("%s on %s: trying again on another engine of the platform", job.image, job.platform)
            pending.append(job)
            return
        run.failed[job] = f"engine {engine} was lost during the build"
        return
    run.failed[job] = f"the build failed on engine {engine} (exit status {status}; see its log)"


def _parent_failed(job: jobs.Job, run: FarmRun, plan: dict[str, Any]) -> bool:
    parent = plan["parents"].get(job.image, {}).get("image")
    return bool(parent) and jobs.Job(parent, job.platform) in run.failed


def _pages(config: Config, run: FarmRun, report: dict[str, Any], tag: str) -> bool:
    """Each published image's manifest page (inventoried on an engine whose own platform the image has, so
    that nothing is emulated), then the wiki, as the CI's wiki job makes them; whether all were written."""
    written = True
    for name, result in (report.get("images") or {}).items():
        if result.get("status") not in ("built", "reused"):
            continue
        platforms = list(result.get("platforms_built") or []) or list(config.spec.images[name].platforms)
        engine = next((e for e in run.engines.engines if run.natives.get(e.name) in platforms
                       and e.name not in run.load.lost), None)
        if engine is None:
            LOGGER.warning("no engine runs %s natively: its manifest page is left out", ", ".join(platforms))
            written = False
            continue
        done = _command(config, ["manifest", f"--image={name}", f"--tag={tag}"], engine.endpoint.env())
        written = written and done == 0
    return _command(config, ["wiki"], {}) == 0 and written


def _command(config: Config, args: Sequence[str], engine_env: dict[str, str]) -> int:
    env = {k: v for k, v in config.settings.environment.items() if k not in endpoints.ENGINE_ENV}
    env.update({**engine_env, REGISTRY_VAR: config.registry})
    return subprocess.run([*jobs.command(), *args], cwd=config.stack_dir, env=env, stdin=subprocess.DEVNULL,
                          check=False).returncode


def _gather(config: Config, folder: Path) -> None:
    """The jobs' reports as one ``artifacts/build-report.json`` (none yet: an empty one), replacing any of an
    earlier run."""
    found = [read_report(path, what="a job's build report", missing_ok=False)
             for path in sorted(folder.rglob("build-report.json"))]
    write_json(config.artifacts / "build-report.json", merge_reports(found) if found else {"images": {}})


def _merge(config: Config, folder: Path) -> int:
    """`stack-builder merge` over the jobs' reports: the indexes, and one report for the run."""
    return _command(config, ["merge", f"--reports={folder}"], {})


def summary(report: dict[str, Any]) -> str:
    """The run as a table: each image, its status, and which engine built (or failed) each platform."""
    from tabulate import tabulate

    rows = [[name, result.get("status", ""), ", ".join(f"{p} on {e}" for p, e in sorted(
        (result.get("engines") or {}).items())), result.get("ref") or result.get("reason", "")]
        for name, result in (report.get("images") or {}).items()]
    lines = [tabulate(rows, headers=["image", "status", "engines", "ref / reason"])]
    lines += [f"engine {name} was lost: {info['lost']}" for name, info in (report.get("engines") or {}).items()
              if info.get("lost")]
    lines += [f"{job}: {why}" for job, why in (report.get("jobs_failed") or {}).items()]
    return "\n".join(lines)
