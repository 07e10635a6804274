"""After ``gc`` deleted manifests: the registry's own garbage collection, which frees their blobs, and the storage
it freed. For a distribution registry on this machine (``docker-registry``, as ``setup.sh`` starts it), given
its configuration file.

It runs ``garbage-collect`` WITHOUT ``--delete-untagged``: that flag deletes the platform manifests of
multi-platform indexes, which are untagged (distribution issue #3178). ``gc`` itself has already deleted exactly
what nothing kept reaches.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stack_builder.errors import StackError, shown

LOGGER = logging.getLogger(__name__)
TIMEOUT_S = 3600
BINARIES = ("docker-registry", "registry")


@dataclass(frozen=True)
class StorageFreed:
    root: Path
    before: int
    after: int

    @property
    def freed(self) -> int:
        return self.before - self.after


def collect_garbage(config: Path) -> StorageFreed:
    """Run the registry's garbage collection on ``config``; the bytes its storage held before and after."""
    binary = next((found for name in BINARIES if (found := shutil.which(name))), None)
    if binary is None:
        raise StackError(f"--registry-gc {config}: no registry program ({' or '.join(BINARIES)}) on PATH to "
                         "collect the garbage with")
    root = storage_root(config)
    before = storage_bytes(root)
    done = subprocess.run([binary, "garbage-collect", str(config)], capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise StackError(f"the registry's garbage collection ({binary} garbage-collect {config}) failed with exit "
                         f"code {done.returncode}: {shown(done.stderr.strip()[-400:])}")
    after = storage_bytes(root)
    LOGGER.info("registry garbage collection: %d bytes before, %d after", before, after)
    return StorageFreed(root, before, after)


def storage_root(config: Path) -> Path:
    """The filesystem root of a registry's storage, from its configuration file."""
    import yaml

    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        root = data["storage"]["filesystem"]["rootdirectory"]
    except OSError as exc:
        raise StackError(f"--registry-gc {config}: cannot read it ({exc.strerror})") from None
    except (yaml.YAMLError, KeyError, TypeError):
        raise StackError(f"--registry-gc {config}: not a registry configuration with storage.filesystem."
                         "rootdirectory (only a filesystem-backed registry's garbage can be collected here)") from None
    return Path(str(root))


def storage_bytes(root: Path) -> int:
    """Bytes of every file under ``root`` (what the storage holds on disk, blocks aside)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue  # removed while we walked
    return total
