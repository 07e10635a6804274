"""The lookup service behind the API, without any web framework: the models stored (cached briefly), tags
resolved to digests (cached briefly), and one answer per request, for exactly one digest.

Every method blocks (the store and the registry are asked synchronously): the API calls them in its thread
pool. The reader is shared by those threads (``precalc.reader`` readers allow that).
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from stack_builder.errors import StackError, shown
from stack_builder.precalc.reader import PredictionReader, StoredModel
from stack_builder.secrets import redact_all
from stack_builder.serving.questions import ApiError, Limits, Shape, parse_question

LOGGER = logging.getLogger(__name__)

NOT_PRECALCULATED = "not precalculated"
FOUND = "found"
COMMA_FREE = frozenset({"float", "integer", "boolean"})  # column kinds whose JSON values never hold a comma
NO_DIGEST = "sha256:" + "0" * 64  # readiness asks the store for a key of a digest nothing has

Clock = Callable[[], float]
TagLookup = Callable[[str, str], "str | None"]  # (image, tag) -> the digest the registry has, or None


@dataclass(frozen=True)
class Answer:
    body: bytes  # the JSON answer, as sent
    keys: int  # keys answered
    digest: str  # the one digest answered for


@dataclass(frozen=True, kw_only=True)
class ServiceOptions:
    limits: Limits = field(default_factory=Limits)
    default_tag: str = "stable"  # the tag asked for when a request names neither digest nor tag
    models_ttl_s: float = 30.0  # how long the list of models stored is reused
    tags_ttl_s: float = 60.0  # how long a tag's digest is reused
    min_refresh_s: float = 1.0  # a digest not in the list refreshes it, at most this often


class ModelCatalog:
    """The models stored, as ``reader.models()`` says (counting rows is not free on a large store): loaded once,
    then reloaded in a thread of its own every ``ttl_s`` while requests go on with the list they have."""

    def __init__(self, load: Callable[[], list[StoredModel]], *, ttl_s: float, min_refresh_s: float,
                 clock: Clock = time.monotonic) -> None:
        self.load, self.ttl_s, self.min_refresh_s, self.clock = load, ttl_s, min_refresh_s, clock
        self.lock = threading.Lock()
        self.models: list[StoredModel] = []
        self.loaded_at: float | None = None
        self.refresher: threading.Thread | None = None  # the reload running in the background, if any

    def current(self, *, fresh_for: str = "") -> list[StoredModel]:
        """The models. The first call loads them; so does one whose ``fresh_for`` (a digest) is not among them,
        once the list is ``min_refresh_s`` old (a model just precalculated answers at once)."""
        with self.lock:
            now = self.clock()
            age = None if self.loaded_at is None else now - self.loaded_at
            missing = bool(fresh_for) and all(m.digest != fresh_for for m in self.models)
            if age is None or (missing and age >= self.min_refresh_s):
                self.models, self.loaded_at = list(self.load()), now
            elif age >= self.ttl_s and self.refresher is None:
                self.refresher = threading.Thread(target=self._reload, name="models-refresh", daemon=True)
                self.refresher.start()
            return self.models

    def _reload(self) -> None:
        models: list[StoredModel] | None = None
        try:
            models = list(self.load())
        except ApiError:  # (logged by the load) the list in hand stays, and the next request tries again
            pass
        with self.lock:
            if models is not None:
                self.models, self.loaded_at = models, self.clock()
            self.refresher = None


class TagCache:
    """A tag's digest, asked of the registry at request time and reused for ``ttl_s``: a tag moved by a
    promotion is followed within that time."""

    def __init__(self, lookup: TagLookup | None, *, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self.lookup, self.ttl_s, self.clock = lookup, ttl_s, clock
        self.lock = threading.Lock()
        self.known: dict[tuple[str, str], tuple[str, float]] = {}

    def digest(self, image: str, tag: str) -> str:
        if self.lookup is None:
            raise ApiError(400, "no registry", "this server resolves no tags (it was started without a stack "
                           "whose spec names the images): give \"digest\"")
        with self.lock:
            cached = self.known.get((image, tag))
            if cached is not None and self.clock() - cached[1] < self.ttl_s:
                return cached[0]
        try:
            digest = self.lookup(image, tag)
        except StackError as exc:
            LOGGER.warning("the registry did not resolve %s:%s: %s", image, tag, exc)
            raise ApiError(503, "registry unavailable", f"the registry did not say which digest {image}:{tag} "
                           "is; try again, or give \"digest\"") from None
        if digest is None:
            raise ApiError(404, "unknown tag", f"{image}:{shown(tag, 80)} is not in the registry")
        with self.lock:
            self.known[(image, tag)] = (digest, self.clock())
        return digest


class Service:
    """The answers: ``models()``, ``predict(image, body)``, ``ready()``. ``spec_models``: the model images of
    the stack's spec and their declared columns (an image there answers even before anything is stored)."""

    def __init__(self, reader: PredictionReader, options: ServiceOptions, *, tags: TagLookup | None = None,
                 spec_models: Mapping[str, tuple[tuple[str, str], ...]] | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.reader, self.options = reader, options
        self.spec_models = dict(spec_models or {})
        self.catalog = ModelCatalog(lambda: self._store("list the models", reader.models),
                                    ttl_s=options.models_ttl_s, min_refresh_s=options.min_refresh_s, clock=clock)
        self.tags = TagCache(tags, ttl_s=options.tags_ttl_s, clock=clock)

    def models(self) -> dict[str, Any]:
        stored = self.catalog.current()
        listed = [{"image": m.image, "digest": m.digest, "rows": m.rows, "columns": _columns(m.columns)}
                  for m in stored]
        waiting = sorted(set(self.spec_models) - {m.image for m in stored})
        listed += [{"image": name, "digest": None, "rows": 0, "columns": _columns(self.spec_models[name])}
                   for name in waiting]
        return {"models": listed}

    def predict(self, image: str, body: bytes) -> Answer:
        """One answer, for one digest: per key (in the order asked) the stored row, or "not precalculated"
        naming that digest."""
        question = parse_question(body, self.options.limits, default_tag=self.options.default_tag)
        known = self.catalog.current()
        if image not in self.spec_models and all(m.image != image for m in known):
            names = sorted({m.image for m in known} | set(self.spec_models))
            raise ApiError(404, "unknown model", f"no model {shown(image, 80)!r} here; the models are: "
                           f"{', '.join(names) or 'none yet'} (GET /models)")
        digest = question.digest or self.tags.digest(image, question.tag)
        stored = [m for m in self.catalog.current(fresh_for=digest) if m.digest == digest]
        if stored and all(m.image != image for m in stored):
            raise ApiError(400, "wrong model", f"{digest} is a digest of {stored[0].image}, not of {image}: ask "
                           f"POST /models/{stored[0].image}/predict")
        columns = stored[0].columns if stored else self.spec_models.get(image, ())
        head = {"image": image, "digest": digest, "tag": question.tag or None, "columns": _columns(columns)}
        passed_on = _passed_on(question.shape, columns)
        if passed_on is not None:
            raw = self._store("look up keys", lambda: self.reader.raw_rows(digest, question.keys)) if stored else {}
            return Answer(_written(head, question.keys, raw, passed_on), len(question.keys), digest)
        found = self._store("look up keys", lambda: self.reader.rows(digest, question.keys)) if stored else {}
        return Answer(_objects(head, question.keys, found), len(question.keys), digest)

    def ready(self) -> None:
        """Raises ``ApiError`` (503) unless the store answers a lookup."""
        self._store("answer", lambda: self.reader.rows(NO_DIGEST, ["readyz"]))

    def _store(self, doing: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ApiError:
            raise
        except Exception as exc:  # a store that is down or broke the connection: the client may retry
            LOGGER.error("the store did not %s: %s", doing, redact_all(shown(f"{type(exc).__name__}: {exc}", 500)))
            raise ApiError(503, "store unavailable", f"the prediction store did not {doing}; try again") from None


def _columns(columns: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": name, "kind": kind} for name, kind in columns]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _objects(head: dict[str, Any], keys: Sequence[str], found: Mapping[str, Mapping[str, Any]]) -> bytes:
    results: list[dict[str, Any]] = []
    for key in keys:
        row = found.get(key)
        if row is None:
            results.append({"key": key, "status": NOT_PRECALCULATED, "digest": head["digest"]})
        else:
            results.append({"key": key, "status": FOUND, "values": row})
    hits = sum(1 for key in keys if key in found)
    return _dumps({**head, "found": hits, "missing": len(keys) - hits, "results": results}).encode()


def _passed_on(shape: Shape, columns: tuple[tuple[str, str], ...]) -> Callable[[str], str] | None:
    """How a row's values are written from the store's own text (a JSON array's), without parsing them, or
    None where they must be read. Lists: as they are. Objects: each value after its column's name, where no
    value can hold a comma (no string column: numbers, true, false and null only)."""
    if shape is Shape.LIST:
        return lambda values: values
    if not columns or any(kind not in COMMA_FREE for _, kind in columns):
        return None
    names = [f"{_dumps(name)}:" for name, _ in columns]

    def as_object(values: str) -> str:
        return "{" + ",".join(n + v for n, v in zip(names, values.strip()[1:-1].split(","), strict=True)) + "}"
    return as_object


def _written(head: dict[str, Any], keys: Sequence[str], raw: Mapping[str, str],
             values_of: Callable[[str], str]) -> bytes:
    """The answer's text from each found row's values as the store wrote them (``values_of`` that text): the
    answer ``_objects`` gives, written without reading 10,000 rows into Python values and back."""
    missing = f'"status":{_dumps(NOT_PRECALCULATED)},"digest":{_dumps(head["digest"])}}}'
    parts: list[str] = []
    for key in keys:
        values = raw.get(key)
        found = missing if values is None else f'"status":"{FOUND}","values":{values_of(values)}}}'
        parts.append(f'{{"key":{_dumps(key)},{found}')
    hits = sum(1 for key in keys if key in raw)
    opening = _dumps({**head, "found": hits, "missing": len(keys) - hits})[:-1]
    return f'{opening},"results":[{",".join(parts)}]}}'.encode()
