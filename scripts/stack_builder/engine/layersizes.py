"""The compressed size of each layer of a local image, measured before the image is pushed.

What is measured: the engine exports the image (``docker save``); each layer's tar, exactly as the engine
hands it over, is gzip-compressed at level 6 with zlib, with a fixed header (no name, mtime 0), and the
compressed bytes are counted; nothing is written anywhere. ``docker push`` compresses a layer with Go's
compress/gzip at its default level, which is also level 6 but another implementation of deflate, so the
registry's blob of a new layer differs from this count by a little (see docs/operations/budgets.md for the
difference measured). A layer the registry already holds is pushed as that blob, so ``pipeline.budgets`` uses
the registry's size for a layer the quarter-stable has.

Each layer is measured once: the sizes are kept by the layer's name in the export (``blobs/sha256/<diff id>``
since Docker 25, ``<v1 id>/layer.tar`` before), so a child's parent layers, or a second run, are read past
without compressing them again. A cached name whose diff ID turns out wrong is measured again.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from stack_builder.engine.client import ENGINE_FAILURES, Engine
from stack_builder.errors import StepFailed

LOGGER = logging.getLogger(__name__)

GZIP_LEVEL = 6  # Go's compress/gzip DefaultCompression, what docker push uses
CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """One layer of an image, bottom first: its diff ID, compressed size and the Dockerfile step that made it."""

    diff_id: str
    size: int  # gzip level 6 bytes (see the module's docstring)
    created_by: str = ""


@dataclass(frozen=True)
class Measured:
    """A layer tar as measured: its diff ID (sha256 of the tar) and its gzip size."""

    diff_id: str
    size: int


class SizeCache:
    """Measured layers by their name in the export; shared by the jobs of a run (thread-safe)."""

    def __init__(self, known: Mapping[str, Measured] | None = None) -> None:
        self._lock = threading.Lock()
        self._known: dict[str, Measured] = dict(known or {})

    def get(self, name: str) -> Measured | None:
        with self._lock:
            return self._known.get(name)

    def put(self, name: str, found: Measured) -> None:
        with self._lock:
            self._known[name] = found

    def forget(self, name: str) -> None:
        with self._lock:
            self._known.pop(name, None)

    def items(self) -> dict[str, Measured]:
        with self._lock:
            return dict(self._known)


def gzip_size(chunks: Iterator[bytes]) -> Measured:
    """The diff ID and gzip size of a tar given as chunks."""
    digest = hashlib.sha256()
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip wrapper (header of 10 bytes)
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(compressor.compress(chunk))
    size += len(compressor.flush())
    return Measured(f"sha256:{digest.hexdigest()}", size)


def measure(client: Engine, image_id: str, cache: SizeCache | None = None) -> tuple[Layer, ...]:
    """Every layer of the local image ``image_id``, bottom first, with its compressed size and step."""
    cache = cache if cache is not None else SizeCache()
    found = _read_export(client, image_id, cache)
    if found is None:  # a cached name named another layer: measure everything once more
        for name in list(cache.items()):
            cache.forget(name)
        found = _read_export(client, image_id, cache)
    if found is None:
        raise StepFailed(f"the export of {image_id} does not match its own layers")
    return found


def _read_export(client: Engine, image_id: str, cache: SizeCache) -> tuple[Layer, ...] | None:
    config: dict[str, Any] | None = None
    manifest: list[dict[str, Any]] = []
    measured: dict[str, Measured] = {}
    config_names = {f"{image_id.removeprefix('sha256:')}.json", f"blobs/sha256/{image_id.removeprefix('sha256:')}"}
    try:
        stream = io.BufferedReader(_Stream(client.api.get_image(image_id, chunk_size=CHUNK)), CHUNK)
        with tarfile.open(fileobj=stream, mode="r|") as export:
            for member in export:
                if not member.isfile():
                    continue
                name = member.name.removeprefix("./")
                handle = export.extractfile(member)
                if handle is None:
                    continue
                if name in config_names:
                    config = json.loads(handle.read())
                elif name == "manifest.json":
                    manifest = json.loads(handle.read())
                elif name.endswith("/layer.tar") or name.startswith("blobs/sha256/"):
                    known = cache.get(name)
                    measured[name] = known if known is not None else gzip_size(iter(lambda: handle.read(CHUNK), b""))
    except ENGINE_FAILURES + (tarfile.TarError, ValueError) as exc:
        raise StepFailed(f"cannot measure the layers of {image_id}: {exc}") from None
    if config is None or not manifest:
        raise StepFailed(f"the export of {image_id} has no image config or manifest.json")
    return _layers(config, [str(n).removeprefix("./") for n in manifest[0].get("Layers") or []], measured, cache)


def _layers(config: Mapping[str, Any], names: list[str], measured: Mapping[str, Measured],
            cache: SizeCache) -> tuple[Layer, ...] | None:
    """The layers in the config's order, each with its step (the config's history, less its empty layers)."""
    diff_ids = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    steps = [str(h.get("created_by") or "") for h in config.get("history") or [] if not h.get("empty_layer")]
    if len(names) != len(diff_ids):
        raise StepFailed(f"the export lists {len(names)} layers, its config {len(diff_ids)}")
    layers = []
    for index, (name, diff_id) in enumerate(zip(names, diff_ids)):
        found = measured.get(name)
        if found is None:  # a layer the export links to another entry (a repeated layer)
            found = next((m for m in measured.values() if m.diff_id == diff_id), None)
        if found is None or found.diff_id != diff_id:
            return None
        cache.put(name, found)
        layers.append(Layer(diff_id, found.size, steps[index] if index < len(steps) else ""))
    return tuple(layers)


class _Stream(io.RawIOBase):
    """The engine's chunks as a file, for tarfile's stream mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._left:
            try:
                self._left = memoryview(next(self._chunks))
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size
