"""`precalc`: run a model image, pinned by digest, over a reference library, and store what it predicts.

The library (or a reproducible sample of it) is cut into N shards; W containers run at a time, one per
shard, files in and out through the engine's archive API as the model checks do. Each shard's output is
validated, then stored with its record in one transaction. A run stopped by a signal, a dead container or
a dead engine is resumed by the same command: the shards stored are skipped, nothing is stored twice.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from stack_builder import signals
from stack_builder.checks import modelcheck
from stack_builder.config import Config
from stack_builder.engine import client as engine_client
from stack_builder.engine import containers, images
from stack_builder.errors import StackError, StepFailed
from stack_builder.plan.revision import read_revision
from stack_builder.precalc import library as libraries
from stack_builder.precalc import loading, urls, validate, values
from stack_builder.precalc.store import check_columns, export_target
from stack_builder.precalc.stores import PredictionStore, open_store
from stack_builder.records.wiki import Wiki
from stack_builder.spec.references import check_tag
from stack_builder.spec.stack_spec import ModelSpec

LOGGER = logging.getLogger(__name__)

STORE = "precalc.duckdb"


@dataclass(frozen=True, kw_only=True)
class PrecalcOptions:
    image: str
    library: str = ""
    tag: str = ""
    key: str = ""
    shards: int = 0  # 0: one per shard_size rows
    shard_size: int = libraries.SHARD_SIZE
    workers: int = 2
    sample: int = 0
    only_shard: int = -1  # one shard of a CI fan-out (0-based); -1: all of them
    export: str = ""
    store: str = ""  # the store's URL; "": the spec's precalc.store, else artifacts/precalc.duckdb


@dataclass
class Summary:
    image: str
    reference: str
    run: str
    shards: int
    skipped: int = 0  # stored before: not run again
    stored_shards: int = 0
    stored_rows: int = 0
    seconds: float = 0.0
    failed: dict[int, str] = field(default_factory=dict)
    refused: str = ""  # the whole run, judged once every shard is stored: why it was not kept
    total_rows: int = 0  # stored for this digest, all runs
    interrupted: bool = False
    exported: str = ""
    store: str = ""  # its URL, without credentials
    empty: bool = False  # an --only-shard past the last shard: nothing to do, a success

    def lines(self) -> list[str]:
        rate = self.stored_rows / self.seconds if self.seconds > 0 else 0.0
        out = [f"precalc {self.image} ({self.reference}), run {self.run}: {self.shards} shard(s), store "
               f"{self.store}",
               f"  stored now: {self.stored_rows} rows in {self.stored_shards} shard(s), {self.seconds:.1f}s, "
               f"{rate:.0f} rows/s",
               f"  already stored (skipped): {self.skipped} shard(s); rows stored for this digest: {self.total_rows}"]
        if self.empty:
            out.append("  this shard is empty (past the library's last shard): nothing to do, 0 rows")
        out += [f"  FAILED shard {n}: {why}" for n, why in sorted(self.failed.items())]
        if self.refused:
            out.append(f"  REFUSED run: {self.refused}; nothing of it is stored")
        if self.interrupted:
            out.append(f"  interrupted by {signals.signal_name()}: run the same command again to resume")
        if self.exported:
            out.append(f"  exported: {self.exported}")
        return out


def model_of(config: Config, image: str) -> ModelSpec:
    spec = config.spec
    if not image:
        raise StackError("give --image NAME (a model image of the spec)")
    spec.require([image])
    model = spec.images[image].model
    if model is None:
        models = [n for n, i in spec.images.items() if i.model is not None]
        raise StackError(f"--image {image} is not a model image (it has no model: block); model images: "
                         f"{', '.join(models) or 'none'}")
    check_columns(model.columns)
    return model


def run_id(library: libraries.Library, key: str, sample: int, shards: int) -> str:
    """The same arguments over the same library: the same run, whose stored shards a re-run skips."""
    text = f"{library.sha256}\n{key}\n{sample}\n{shards}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def store_url(config: Config, given: str) -> str:
    """The store's URL: ``--store``, else STACK_PRECALC_STORE, else the spec's ``precalc.store`` (a relative
    DuckDB path is the stack's), else ``artifacts/precalc.duckdb``."""
    if given or config.settings.ci.precalc_store:
        return given or config.settings.ci.precalc_store
    section = config.spec.raw.get("precalc") or {}
    named = str(section.get("store") or "") if isinstance(section, dict) else ""
    if not named:
        return urls.default_url(config.artifacts)
    where = urls.parse(named, what="spec.yml precalc.store")
    if where.path is not None and not where.path.is_absolute():
        return f"duckdb://{(config.stack_dir / where.path).resolve()}"
    return named


def plan(config: Config, options: PrecalcOptions) -> tuple[libraries.Library, list[int], list[list[int]]]:
    """The library, the rows to run (all, or a sample) and their shards: what a fan-out's matrix is made from."""
    model = model_of(config, options.image)
    input_columns = modelcheck.Table.read(model.examples / "input.csv").header
    library = libraries.load(Path(options.library), options.key, input_columns)
    indices = libraries.sample(library, options.sample)
    count = libraries.shard_count(len(indices), options.shards, options.shard_size)
    return library, indices, libraries.shards(indices, count)


def precalc(config: Config, options: PrecalcOptions) -> Summary:
    model = model_of(config, options.image)
    if options.workers < 1:
        raise StackError(f"--workers {options.workers}: at least 1")
    library, indices, shards = plan(config, options)
    if options.only_shard < -1:
        raise StackError(f"--only-shard {options.only_shard}: give a shard number from 0 (or leave it out)")
    target = export_target(Path(options.export), options.image) if options.export else None
    url = store_url(config, options.store)
    spec = config.spec
    digest, repo, engine = _pinned(config, options)
    reference = f"{repo}@{digest}"
    run = run_id(library, library.key, options.sample, len(shards))
    summary = Summary(options.image, reference, run, len(shards))
    # (a fan-out with more shard jobs than shards: a job past the last shard has an empty shard, a success)
    summary.empty = options.only_shard >= len(shards)
    wanted = ([] if summary.empty else [options.only_shard]) if options.only_shard >= 0 else list(range(len(shards)))
    with open_store(url) as store:
        summary.store = store.shown
        store.ensure(model.columns, options.image)
        done = store.stored_shards(digest, run)
        todo = [n for n in wanted if n not in done]
        summary.skipped = len(wanted) - len(todo)
        started = time.monotonic()
        _run_shards(engine, reference, model, library, shards, todo, store, summary, options, digest,
                    timeout_s=spec.images[options.image].timeouts.get("model", modelcheck.RUN_TIMEOUT_S))
        summary.seconds = time.monotonic() - started
        if options.only_shard < 0 and not summary.failed and not summary.interrupted:
            _judge(store, summary, model, digest, library.keys(indices))
        summary.total_rows = store.count(digest)
        if target is not None and not summary.interrupted and not summary.refused:
            summary.exported = str(store.export(options.image, digest, target, model.columns))
        _record_coverage(config, options.image, store, (digest, library.path.name, len(library.rows),
                                                        store.run_rows(digest, run)))
    return summary


def _pinned(config: Config, options: PrecalcOptions) -> tuple[str, object, engine_client.Engine]:
    """The digest the tag names, the repository, and an engine that has pulled the image by that digest."""
    spec = config.spec
    tag = options.tag or read_revision(config.stack_dir).tags(spec.tag_prefix)[0]
    check_tag(tag)
    repo = spec.images[options.image].repository.on(config.registry)
    registry = config.registry_client()
    credentials = registry.credentials
    digest = registry.manifest_digest(repo.path, tag)
    if digest is None:
        raise StackError(f"{repo}:{tag} is not in registry {config.registry}: build it first, or give --tag")
    engine = engine_client.connect(pool_size=options.workers + 4)
    images.pull(engine, str(repo), digest, auth=credentials.auth_config() if credentials else None)
    return digest, repo, engine


def matrix(config: Config, options: PrecalcOptions) -> dict[str, object]:
    """A fan-out's plan, for its matrix: the shard count every job must be given, and the shard numbers."""
    _, _, shards = plan(config, options)
    if len(shards) > libraries.MAX_SHARDS:
        raise StackError(f"--shards {len(shards)}: a fan-out runs at most {libraries.MAX_SHARDS} jobs (GitHub's "
                         "matrix limit); give fewer, or a larger --shard-size")
    return {"shards": len(shards), "shard": list(range(len(shards)))}


def _judge(store: PredictionStore, summary: Summary, model: ModelSpec, digest: str, keys: list[str]) -> None:
    """The all-null rule, on the whole run once every shard is stored (so it does not depend on --shards): a
    column without a value in any row refuses the run, and its rows and records go."""
    why = validate.all_null(validate.total(store.run_filled(digest, summary.run, model.columns)), model,
                            what="the run")
    if why is not None:
        store.drop_run(digest, summary.run, keys)
        summary.refused = why
        LOGGER.error("run %s refused: %s", summary.run, why)


def _record_coverage(config: Config, image: str, store: PredictionStore,
                     library: tuple[str, str, int, int] | None = None) -> None:
    """The model catalog's precalculation facts: rows stored per digest, the store they live in (its URL
    without credentials) and, after a run, how much of its reference library (digest, name, rows) is stored."""
    coverage = store.coverage(image)
    facts: dict[str, object] = {"coverage": coverage, "stores": {d: store.shown for d in coverage}}
    if library is not None:
        digest, name, rows, covered = library
        facts["libraries"] = {digest: {"library": name, "rows": rows, "covered": covered}}
    pages = Wiki(config.wiki_dir)
    pages.update_model(image, facts)
    pages.render(config.spec)


def _run_shards(engine: engine_client.Engine, reference: str, model: ModelSpec, library: libraries.Library,
                shards: list[list[int]], todo: list[int], store: PredictionStore, summary: Summary,
                options: PrecalcOptions, digest: str, *, timeout_s: float) -> None:
    """W shards at a time, each in a container of its own; each output validated, then stored (here, in this
    thread: one writer). A signal stops new shards and removes the running containers."""
    if not todo:  # every shard stored already, or an empty one: no container to start
        return
    input_columns = modelcheck.Table.read(model.examples / "input.csv").header
    run_label = uuid.uuid4().hex[:12]

    def stop_containers() -> None:
        containers.remove_labelled(engine, run_label)

    def one(number: int) -> modelcheck.Table:
        table = library.model_input(shards[number], input_columns)
        try:
            return modelcheck.run_model(engine, reference, model, table, timeout_s=timeout_s)
        except csv.Error as exc:  # e.g. a field over the csv module's limit: this shard fails, not the run
            raise StepFailed(f"the model's output is not CSV precalc can read ({exc}; a value may have at most "
                             f"{values.MAX_FIELD // 1024} KiB)") from None

    try:
        with containers.run_labelled(run_label), signals.handling(on_stop=stop_containers), \
                ThreadPoolExecutor(max_workers=options.workers) as pool:
            waiting = list(todo)
            running: dict[Future[modelcheck.Table], int] = {}
            while waiting or running:
                while waiting and len(running) < options.workers and not signals.stopping():
                    number = waiting.pop(0)
                    running[pool.submit(one, number)] = number
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    number = running.pop(future)
                    _settle(future, number, shards, library, model, store, summary, options.image, digest)
            summary.interrupted = signals.stopping()
    finally:
        stop_containers()


def _settle(future: Future[modelcheck.Table], number: int, shards: list[list[int]], library: libraries.Library,
            model: ModelSpec, store: PredictionStore, summary: Summary, image: str, digest: str) -> None:
    try:
        output = future.result()
    except StepFailed as exc:
        summary.failed[number] = f"interrupted ({signals.signal_name()})" if signals.stopping() else str(exc)
        return
    try:
        checked = validate.check(output, model, library.keys(shards[number]))
    except validate.InvalidOutput as exc:
        summary.failed[number] = f"invalid output, not stored: {exc}"
        LOGGER.error("shard %d: invalid output, not stored: %s", number, exc)
        return
    try:
        added = store.put_shard(image=image, digest=digest, run=summary.run, shard=number, rows=checked,
                                columns=model.columns)
    except StepFailed as exc:
        summary.failed[number] = str(exc)
        LOGGER.error("shard %d: %s", number, exc)
        return
    summary.stored_shards += 1
    summary.stored_rows += added
    LOGGER.info("shard %d: %d rows stored", number, added)


def lookup(config: Config, image: str, keys: list[str], store_given: str = "") -> list[str]:
    model = model_of(config, image)
    url = store_url(config, store_given)
    where = urls.parse(url)
    if where.path is not None and not where.path.is_file():
        raise StackError(f"no prediction store at {where.path}: run `stack-builder precalc --image {image} "
                         "--library ...`")
    with open_store(url) as store:
        store.ensure(model.columns, image)
        found = store.lookup(image, keys, model.columns)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["digest", "key", *(n for n, _ in model.columns)])
    writer.writerows([["" if v is None else str(v) for v in row] for row in found])
    lines = out.getvalue().splitlines()
    missing = sorted(set(keys) - {str(row[1]) for row in found})
    if missing:
        lines.append(f"# not stored: {', '.join(missing)}")
    return lines


def load(config: Config, image: str, folder: str, store_given: str = "") -> int:
    """Load the Parquet files a CI fan-out's shard jobs exported (any depth under ``folder``), each checked
    as a shard's output is, all in one transaction."""
    model = model_of(config, image)
    files = sorted(Path(folder).rglob("*.parquet"))
    if not files:
        raise StackError(f"--load {folder}: no .parquet files there")
    with open_store(store_url(config, store_given)) as store:
        store.ensure(model.columns, image)
        added = loading.load(store, files, image, model)
        _record_coverage(config, image, store)
        return added
