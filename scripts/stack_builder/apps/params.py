"""The command-line parameters of every task, as doit declares them. Light: imported at start-up."""
from __future__ import annotations

import os
from typing import Any

from stack_builder.defaults import DEFAULT_REGISTRY, REGISTRY_VAR


def _param(name: str, long: str, default: Any, help: str, type: Any = str) -> dict[str, Any]:
    return {"name": name, "long": long, "default": default, "type": type, "help": help}


STACK_DIR_OPTION: dict[str, Any] = {  # before the command: -d DIR
    "section": "task loader",
    "name": "cwdPath",
    "short": "d",
    "long": "dir",
    "type": str,
    "default": None,
    "help": "the stack folder (default: the current folder)",
}

SELECTION = [
    _param("base_ref", "base-ref", "", "compare with this git ref instead of the default base (CI: the push's "
           "previous commit or the PR base; locally: the merge-base with main), plus uncommitted changes"),
    _param("all_images", "all", False, "select every image, whatever changed", bool),
    _param("image", "image", [], "select exactly this image (repeat for several); a parent that is not rebuilt "
           "comes from the registry by digest, and is selected too when it is nowhere", list),
    _param("refresh_base", "refresh-base", False, "also select each root whose upstream base (its Dockerfile's "
           "FROM) moved since its image in the registry was built, as that image's "
           "org.opencontainers.image.base.digest label says (reason: base image updated), with its descendants; "
           "needs the registry", bool),
]
REGISTRY = _param("registry", "registry", "", f"registry HOST[:PORT] replacing the host of every image_name "
                  f"(default: ${REGISTRY_VAR}, else the local registry {DEFAULT_REGISTRY})")
PLATFORM = _param("platform", "platform", "", "only this platform (e.g. linux/arm64), as one CI job does: a "
                  "multi-platform image is pushed under its per-platform tag and `merge` makes the index")
PLAN = [*SELECTION, REGISTRY, PLATFORM]
BUILD = [
    *SELECTION,
    _param("workers", "workers", os.cpu_count() or 1, "images built at the same time (default: number of cores)",
           int),
    REGISTRY,
    _param("no_push", "no-push", False, "build and test only; push nothing (the registry, when it answers, "
           "still says which images it lacks)", bool),
    _param("no_reuse", "no-reuse", False, "build every planned image, even one whose input key (Dockerfile, "
           "context, build args, secret ids, platform, parent digest) is already published", bool),
    _param("test_timeout", "test-timeout", 0, "seconds each image's tests may run, for this run, over the spec's "
           "`timeouts: {tests: N}` (default 1800)", int),
    _param("model_timeout", "model-timeout", 0, "seconds each model check container may run (spec: "
           "`timeouts: {model: N}`, default 900)", int),
    _param("info_timeout", "info-timeout", 0, "seconds each image's info commands may run together (spec: "
           "`timeouts: {info_cmds: N}`, default 600)", int),
    PLATFORM,
    _param("allow_over_budget", "allow-over-budget", False, "for an emergency: push an image that is over its "
           "`budget:` (size, growth or denied packages) anyway; each such image is logged as a warning and "
           "recorded in the build report (allowed_over_budget)", bool),
    _param("engines", "engines", "", "a YAML file mapping platforms to Docker engines (unix://, tcp:// with TLS, "
           "ssh:// or a docker context): each platform is built, tested and pushed on its engines, --workers "
           "at a time on each, and the indexes assembled from what they pushed"),
]
TREE = [*SELECTION, REGISTRY]
MERGE = [
    _param("image", "image", [], "merge only this image (repeat); default: the images in artifacts/plan.json, "
           "else every multi-platform image", list),
    REGISTRY,
    _param("reports", "reports", "", "a folder holding the CI jobs' artifacts: their build-report.json files are "
           "merged into artifacts/build-report.json, one report for the whole run"),
]
MANIFEST = [
    _param("image", "image", "", "the image (a name under images in the spec)"),
    _param("tag", "tag", "", "the tag of that image in the registry"),
    REGISTRY,
]
SBOM = [
    _param("image", "image", "", "the image (a name under images in the spec)"),
    _param("tag", "tag", "", "the tag of that image in the registry, e.g. 2026.4-main or stable"),
    _param("platform", "platform", "", "the platform (e.g. linux/arm64) when the tag holds several"),
    _param("output", "output", "", "the file to write (default artifacts/sbom/<image>-<tag>-<os>-<arch>.cdx.json)"),
    REGISTRY,
]
YANK = [
    _param("image", "image", "", "the image (a name under images in the spec)"),
    _param("digest", "digest", "", "the digest to revoke, sha256:<64 hex>"),
    _param("reason", "reason", "", "why (required), e.g. \"CVE-2026-1234 in openssl\""),
    _param("dry_run", "dry-run", False, "say which tags would be removed, and change nothing", bool),
    REGISTRY,
]
PRECALC = [
    _param("image", "image", "", "the model image (a name under images in the spec)"),
    _param("library", "library", "", "the reference library, a CSV with a header row"),
    _param("tag", "tag", "", "the image's tag to run, pinned to its digest (default: this branch's build tag)"),
    _param("key", "key", "", "the library's key column (default: its first)"),
    _param("shards", "shards", 0, "cut the rows into this many shards, one container each (0: one per "
           "--shard-size rows, at most 256)", int),
    _param("shard_size", "shard-size", 10000, "rows per shard when --shards is 0", int),
    _param("store", "store", "", "the prediction store: duckdb:///PATH.duckdb or postgresql://USER:PASSWORD@HOST:"
           "PORT/DB (default: STACK_PRECALC_STORE, else the spec's precalc.store, else artifacts/precalc.duckdb)"),
    _param("matrix", "matrix", False, "print the fan-out's plan as JSON ({\"shards\": N, \"shard\": [0..N-1]}) "
           "and run nothing", bool),
    _param("workers", "workers", 2, "containers at a time", int),
    _param("sample", "sample", 0, "a reproducible random sample of this many rows (0: every row)", int),
    _param("only_shard", "only-shard", -1, "run only this shard (0-based), as one CI job of a fan-out does", int),
    _param("lookup", "lookup", [], "print the stored predictions for this key (repeat for several)", list),
    _param("export", "export", "", "also write the image's stored predictions to DIR as Parquet"),
    _param("load", "load", "", "load the Parquet files under DIR (a fan-out's shard jobs) into the store"),
    REGISTRY,
]
SERVE = [
    _param("store", "store", "", "the prediction store's URL: duckdb:///ABS/PATH.duckdb, or "
           "postgresql://USER:PASSWORD@HOST:PORT/DATABASE as a role that may only read (serve refuses one that "
           "can write); default: precalc's (STACK_PRECALC_STORE, else the spec's precalc.store, else this stack's "
           "artifacts/precalc.duckdb); DuckDB is opened read-only"),
    _param("host", "host", "127.0.0.1", "the address to listen on (0.0.0.0: every interface)"),
    _param("port", "port", 8000, "the port to listen on (0: any free port, named in the log)", int),
    _param("max_keys", "max-keys", 10_000, "keys one request may ask for", int),
    _param("max_body", "max-body", 8 * 1024 * 1024, "bytes one request body may have (larger: 413)", int),
    _param("default_tag", "default-tag", "stable", "the tag whose digest a request gets when it names neither "
           "\"digest\" nor \"tag\""),
    _param("tag_ttl", "tag-ttl", 60, "seconds a tag's digest, asked of the registry, is reused (a promotion is "
           "followed within this time)", int),
    _param("models_ttl", "models-ttl", 30, "seconds the list of models stored is reused (a digest not in it "
           "reloads it at once)", int),
    REGISTRY,
]
TAG = [
    _param("tag", "tag", "", "YYYY.Q-branch: promote it to YYYY.Q-stable; with --global-stable, YYYY.Q: move "
           "`stable` to that quarter's YYYY.Q-stable"),
    _param("global_stable", "global-stable", False, "move the global `stable` tag (see --tag)", bool),
    _param("dry_run", "dry-run", False, "print the plan (digests, targets, gate results) and change nothing", bool),
    _param("skip_gpu_test", "skip-gpu-test", False, "promote gpu: true images without a passing GPU test record; "
           "this is written into promotion.json and the wiki", bool),
    _param("allow_platform_drop", "allow-platform-drop", False, "promote even when the target has a platform the "
           "source lacks (the platform disappears from it)", bool),
    _param("rollback", "rollback", False, "move a stable tag back to the digests it held before its last promotion "
           "(recorded in the registry), through the same gates: --rollback --global-stable for `stable`, "
           "--rollback --tag YYYY.Q for YYYY.Q-stable", bool),
    REGISTRY,
]
GPU = [
    _param("tag", "tag", "", "the tag whose gpu: true images are tested, e.g. 2024.1-main"),
    _param("image", "image", [], "test only this gpu image (repeat for several)", list),
    REGISTRY,
    _param("test_timeout", "test-timeout", 0, "seconds each image's GPU tests may run (spec: "
           "`timeouts: {gpu_tests: N}`, default 3600)", int),
]
INIT = [
    _param("name", "name", "base", "the root image's name (its folder is images/NAME/; e.g. base-notebook)"),
    _param("owner", "owner", "", "the registry owner in each image_name, ghcr.io/OWNER/NAME (default: the GitHub "
           "owner of the git remote origin, else my-org)"),
    _param("model", "model", False, "also add a model image, NAME-model: a child that turns an input CSV into an "
           "output CSV, with its columns, examples and reference output", bool),
    _param("force", "force", False, "overwrite files that exist already (without it, init names them and writes "
           "nothing)", bool),
]
GC = [
    _param("dry_run", "dry-run", False, "make the plan and print it (what goes, why, the bytes freed); delete "
           "nothing. The plan is also written to artifacts/gc-plan.json", bool),
    _param("keep", "keep", [], "also keep this digest (sha256:...) and everything it reaches, e.g. the head of an "
           "open pull request (repeat for several)", list),
    _param("keep_commit", "keep-commit", [], "also keep the per-commit builds of this commit (its full or 12-digit "
           "sha), e.g. an open pull request's head (repeat for several)", list),
    _param("plan", "plan", "", "apply this plan (a gc-plan.json an earlier --dry-run wrote) instead of making a "
           "new one: refused if any tag moved since it was made"),
    _param("builds", "builds", 0, "per-commit builds kept per branch, for this run (default: the spec's "
           "retention.builds, else 10)", int),
    _param("days", "days", -1, "keep what is younger than this many days, for this run (default: the spec's "
           "retention.days, else 30)", int),
    _param("registry_gc", "registry-gc", "", "after deleting, run the registry's own garbage collection with this "
           "configuration file (a filesystem-backed distribution registry on this machine, e.g. "
           ".stack-run/registry.yml) and report the storage freed"),
    REGISTRY,
]
