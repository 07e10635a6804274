"""Budgets: sizes as spec.yml writes them, the budget of each image, the verdict on measured layers, deny
patterns, the layers that grew most, the words of a failure, and the export the layer sizes are read from."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from stack_builder.checks.budget import (BudgetKind, PlatformImage, Stable, added_packages, denied, evaluate,
                                         grown_layers, total_size)
from stack_builder.engine import layersizes
from stack_builder.engine.layersizes import Layer, SizeCache
from stack_builder.errors import SpecError
from stack_builder.pipeline.budgets import sbom_packages
from stack_builder.records import manifests, sbom
from stack_builder.records.report import merge_reports
from stack_builder.spec.budgets import Budget, merged, parse_size, size_text
from stack_builder.spec.stack_spec import load_spec


# -- sizes ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("written", "size"), [
    (1234, 1234), ("1234", 1234), ("1.5GB", 1_500_000_000), ("800MB", 800_000_000), ("512KiB", 524_288),
    ("0.5KiB", 512), ("1.5 gb", 1_500_000_000), ("2MiB", 2 * 1024 ** 2), ("1kB", 1000), ("1.0000001kB", 1000),
    ("3 B", 3), ("1TiB", 1024 ** 4), ("1.1GB", 1_100_000_000)])
def test_sizes_are_read_exactly(written: Any, size: int) -> None:
    assert parse_size(written) == size


@pytest.mark.parametrize(("written", "words"), [
    ("1.5 GBs", "unknown unit 'GBs'"), ("lots", "is not a size"), ("0B", "less than one byte"),
    ("0.4B", "less than one byte"), (True, "is not a size"), ("-1MB", "is not a size"), ("1e3", "is not a size")])
def test_a_size_that_cannot_be_read_says_how_to_write_one(written: Any, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(written)
    assert words in str(caught.value) and "KiB" in str(caught.value) and "e.g. 1.5GB" in str(caught.value)


def test_size_text_keeps_the_exact_bytes() -> None:
    assert size_text(1) == "1 B"
    assert size_text(1_500_000_001) == "1.50 GB (1500000001 bytes)"


# -- the budget of each image ----------------------------------------------------------------------------------

def test_the_images_keys_override_the_stacks_and_deny_lists_merge_per_manager() -> None:
    stack = {"size": "1GB", "growth": 10, "deny": {"apt": ["openssh-server"], "pip": ["tensorflow*"]}}
    own = {"growth": 5, "deny": {"pip": []}}
    assert merged(stack, own) == Budget(size=1_000_000_000, growth=5.0,
                                        deny={"apt": ("openssh-server",), "pip": ()})
    assert merged(stack, None) == Budget(size=1_000_000_000, growth=10.0,
                                         deny={"apt": ("openssh-server",), "pip": ("tensorflow*",)})
    assert merged(None, None) is None
    assert merged(None, {"deny": {"pip": []}}) is None  # nothing limited


SPEC = """\
budget:
  size: 2GB
  deny: {apt: [openssh-server]}
images:
  base:
    image_name: ghcr.io/org/base
    budget: {size: 512MiB, growth: 10}
  child:
    image_name: ghcr.io/org/child
    depend_on: base
tag:
  prefix: "2024.1"
"""


def _spec_dir(tmp_path: Path, text: str) -> Path:
    for name in ("base", "child"):
        (tmp_path / "images" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "images" / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "spec.yml").write_text(textwrap.dedent(text))
    return tmp_path


def test_the_spec_gives_each_image_its_budget(tmp_path: Path) -> None:
    spec = load_spec(_spec_dir(tmp_path, SPEC))
    assert spec.images["base"].budget == Budget(size=512 * 1024 ** 2, growth=10.0, deny={"apt": ("openssh-server",)})
    assert spec.images["child"].budget == Budget(size=2_000_000_000, deny={"apt": ("openssh-server",)})


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("size: 512MiB", "size: 512 megs", "spec.yml:7: images.base.budget.size: '512 megs' has an unknown unit 'megs'"),
    ("size: 512MiB", "size: 1.5", "spec.yml:7: images.base.budget.size: must be a whole number or a string, not a "
                                  "number (1.5)"),
    ("growth: 10", "growth: -1", "spec.yml:7: images.base.budget.growth: -1 is less than the minimum of 0"),
    ("deny: {apt: [openssh-server]}", "deny: {npm: [left-pad]}",
     "spec.yml:3: budget.deny.npm: unknown key 'npm'; allowed keys: apt, conda, pip"),
    ("size: 2GB", "size: 0KB", "spec.yml:2: budget.size: '0KB' is less than one byte"),
    ("growth: 10", "grow: 10", "spec.yml:7: images.base.budget.grow: unknown key 'grow' (did you mean 'growth'?)"),
])
def test_a_bad_budget_is_one_clear_problem(tmp_path: Path, old: str, new: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec_dir(tmp_path, SPEC.replace(old, new)))
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(expected), caught.value.problems


# -- the verdict -------------------------------------------------------------------------------------------------

def _layer(n: int, size: int, step: str = "") -> Layer:
    return Layer(f"sha256:{n:064x}", size, step or f"RUN step {n}")


BASE = (_layer(1, 1000, "ADD rootfs.tar /"),)


def test_a_size_over_by_one_byte_fails_and_the_same_size_passes() -> None:
    image = PlatformImage("linux/amd64", (*BASE, _layer(2, 501, "RUN make big")))
    assert image.size == 1501
    over = evaluate(Budget(size=1500), [image], {"linux/amd64": None}, {})
    assert over.over and [v.kind for v in over.violations] == [BudgetKind.SIZE]
    assert "size 1.50 kB (1501 bytes) compressed is over the budget of 1.50 kB (1500 bytes) by 1 B" in over.message()
    assert "largest layers: +1.00 kB (1000 bytes) by ADD rootfs.tar /, +501 B by RUN make big" in over.message()
    assert "packages added since the stable: no quarter-stable yet" in over.message()
    fits = evaluate(Budget(size=1501), [image], {"linux/amd64": None}, {})
    assert not fits.over and fits.usage["size"] == {"limit": 1501, "used": {"linux/amd64": 1501}}


def test_a_repeated_layer_is_counted_once() -> None:
    assert total_size([_layer(1, 10), _layer(2, 5), _layer(1, 10)]) == 15


def test_growth_is_measured_against_the_stable_and_names_what_grew() -> None:
    stable = Stable("2024.1-stable", "sha256:" + "a" * 64, (*BASE, _layer(2, 1000, "RUN pip install x")),
                    packages={"pip": {"x": "1.0"}, "apt": {"libc6": "2.36"}})
    image = PlatformImage("linux/amd64", (*BASE, _layer(3, 1201, "RUN pip install x")))
    packages = {"linux/amd64": {"pip": {"x": "1.1", "y": "2.0"}, "apt": {"libc6": "2.36", "curl": "7.88"}}}
    verdict = evaluate(Budget(growth=10), [image], {"linux/amd64": stable}, packages,
                       sizes={"apt": {"curl": 420_000}})
    text = verdict.message()
    assert [v.kind for v in verdict.violations] == [BudgetKind.GROWTH]
    assert "growth 10.05% over 2024.1-stable (2.00 kB (2000 bytes) -> 2.20 kB (2201 bytes)) is over the budget of 10%" in text
    assert "layers that grew most since 2024.1-stable: +201 B (was 1.00 kB (1000 bytes)) by RUN pip install x" in text
    assert "packages added since 2024.1-stable: apt curl 7.88 (420.00 kB (420000 bytes) installed), pip x 1.1, " \
           "pip y 2.0" in text
    assert not evaluate(Budget(growth=10.05), [image], {"linux/amd64": stable}, packages).over


def test_growth_without_a_stable_is_not_applied_and_says_so() -> None:
    verdict = evaluate(Budget(growth=0), [PlatformImage("linux/amd64", BASE)], {"linux/amd64": None}, {})
    assert not verdict.over and verdict.usage["growth"] == {"limit": 0, "used": {"linux/amd64": None}}


def test_the_layers_that_grew_most_pair_layers_by_content_then_by_step() -> None:
    stable = [_layer(1, 100, "ADD a"), _layer(2, 50, "RUN apt-get install"), _layer(3, 70, "RUN gone")]
    layers = [_layer(1, 100, "ADD a"), _layer(4, 80, "RUN  apt-get   install"), _layer(5, 20, "RUN new"),
              _layer(6, 10, "RUN gone")]
    grown = [(layer.created_by, growth, before) for layer, growth, before in grown_layers(layers, stable)]
    assert grown == [("RUN  apt-get   install", 30, 50), ("RUN new", 20, None)]  # (RUN gone shrank: not shown)


def test_deny_patterns_match_names_as_each_manager_writes_them() -> None:
    packages = {"pip": {"tensorflow-gpu": "2.15", "numpy": "1.26", "Typing_Extensions": "4.9"},
                "apt": {"openssh-server": "1:9.2p1-2", "openssh-client": "1:9.2p1-2"}}
    deny = {"pip": ("TensorFlow*", "typing.extensions"), "apt": ("openssh-server",), "conda": ("*",)}
    assert denied(packages, deny) == [("pip", "Typing_Extensions", "4.9", "typing.extensions"),
                                      ("pip", "tensorflow-gpu", "2.15", "TensorFlow*"),
                                      ("apt", "openssh-server", "1:9.2p1-2", "openssh-server")]


def test_a_denied_package_fails_naming_it_and_its_version() -> None:
    image = PlatformImage("linux/amd64", BASE)
    verdict = evaluate(Budget(deny={"apt": ("openssh-*",)}), [image], {"linux/amd64": None},
                       {"linux/amd64": {"apt": {"openssh-server": "1:9.2p1-2"}}})
    assert [v.kind for v in verdict.violations] == [BudgetKind.DENY]
    assert "denied packages: apt openssh-server 1:9.2p1-2 (matches 'openssh-*')" in verdict.message()
    assert verdict.usage["deny"]["found"] == [{"platform": "linux/amd64", "manager": "apt", "package": "openssh-server",
                                               "version": "1:9.2p1-2", "pattern": "openssh-*"}]


def test_each_platform_is_judged_on_its_own() -> None:
    small, big = PlatformImage("linux/amd64", BASE), PlatformImage("linux/arm64", (*BASE, _layer(9, 1)))
    verdict = evaluate(Budget(size=1000), [small, big], {}, {})
    assert [v.platform for v in verdict.violations] == ["linux/arm64"] and "(linux/arm64)" in verdict.message()


def test_added_packages_count_a_new_version() -> None:
    assert added_packages({"pip": {"a": "2", "b": "1"}}, {"pip": {"a": "1", "b": "1"}}) == [("pip", "a", "2")]


def test_the_stables_packages_are_read_back_from_its_sbom() -> None:
    document = sbom.document({"apt": {"libc6": "2.36"}, "pip": {"numpy": "1.26"}}, repository="r/x",
                             digest="sha256:" + "b" * 64, platform="linux/amd64")
    assert sbom_packages(document) == {"apt": {"libc6": "2.36"}, "pip": {"numpy": "1.26"}}
    assert sbom_packages(b"not json") is None


# -- what is measured ------------------------------------------------------------------------------------------

def test_a_layers_size_is_its_gzip_at_level_6_however_it_is_chunked() -> None:
    data = b"".join(hashlib.sha256(str(i).encode()).digest() * (i % 7) for i in range(20000))
    found = layersizes.gzip_size(iter([data[:1], data[1:70000], data[70000:]]))
    assert found.size == len(gzip.compress(data, compresslevel=6, mtime=0))
    assert found.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


def _layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def _export(layers: list[bytes], steps: list[str]) -> tuple[bytes, str]:
    """An image export as Docker 20.10 writes it (<v1 id>/layer.tar, <config>.json, manifest.json)."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    history = [{"created_by": "ARG X", "empty_layer": True}] + [{"created_by": s} for s in steps]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": history}).encode()
    image_id = hashlib.sha256(config).hexdigest()
    names = [f"{i:064x}/layer.tar" for i in range(len(layers))]
    members = {**dict(zip(names, layers)), f"{image_id}.json": config,
               "manifest.json": json.dumps([{"Config": f"{image_id}.json", "Layers": names}]).encode()}
    return _layer_tar(members), f"sha256:{image_id}"


class _Api:
    def __init__(self, export: bytes) -> None:
        self.export = export
        self.saves = 0

    def get_image(self, image: str, chunk_size: int) -> Iterator[bytes]:
        self.saves += 1
        for start in range(0, len(self.export), 7777):
            yield self.export[start:start + 7777]


class _Client:
    def __init__(self, export: bytes) -> None:
        self.api = _Api(export)


def test_each_layer_of_an_export_is_measured_once_with_its_step() -> None:
    layers = [_layer_tar({"a": b"x" * 5000}), _layer_tar({"b": bytes(range(256)) * 40})]
    export, image_id = _export(layers, ["ADD a /", "RUN make b"])
    client = _Client(export)
    cache = SizeCache()
    found = layersizes.measure(client, image_id, cache)
    assert [(layer.size, layer.created_by) for layer in found] == [
        (len(gzip.compress(layer, 6, mtime=0)), step) for layer, step in zip(layers, ["ADD a /", "RUN make b"])]
    assert layersizes.measure(client, image_id, cache) == found
    assert client.api.saves == 2


def test_a_cached_size_of_another_layer_is_measured_again() -> None:
    layers = [_layer_tar({"a": b"x" * 5000})]
    export, image_id = _export(layers, ["ADD a /"])
    cache = SizeCache({"0" * 64 + "/layer.tar": layersizes.Measured("sha256:" + "f" * 64, 1)})
    client = _Client(export)
    found = layersizes.measure(client, image_id, cache)
    assert found[0].size == len(gzip.compress(layers[0], 6, mtime=0)) and client.api.saves == 2


# -- the page and the report -----------------------------------------------------------------------------------

def test_the_manifest_page_shows_each_budget_and_how_much_is_used() -> None:
    image = PlatformImage("linux/amd64", (*BASE, _layer(2, 500)))
    stable = Stable("2024.1-stable", "sha256:" + "a" * 64, BASE)
    verdict = evaluate(Budget(size=3000, growth=100, deny={"apt": ("telnet*",)}), [image], {"linux/amd64": stable},
                       {"linux/amd64": {"apt": {"bash": "5"}}})
    lines = manifests._budget_section({**verdict.usage, "over": [], "allowed_over": False})
    text = "\n".join(lines)
    assert "| size (compressed) | 3.0 kB | linux/amd64 | 1.5 kB | 50.0% |" in text
    assert "| growth | 100% | linux/amd64 | +50.00% over 2024.1-stable (1.0 kB) | 50.0% |" in text
    assert "| deny apt | ` telnet* ` | all | none found | |" in text
    assert manifests._budget_section(None) == []


def test_the_merged_report_keeps_an_allowed_over_budget() -> None:
    job = {"status": "built", "reason": "", "tests": {}}
    merged_report = merge_reports([{"images": {"a": {**job, "allowed_over_budget": True}}},
                                   {"images": {"a": dict(job)}}])
    assert merged_report["images"]["a"]["allowed_over_budget"] is True
