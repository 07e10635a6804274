"""Finding a docker client that can build with BuildKit, on this machine's real clients."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stack_builder.engine.build import find_cli
from stack_builder.errors import EngineError

NEW_CLIENT = Path("/usr/local/bin/docker")  # docker 28.x on these machines, without the buildx plugin


def has_buildx(binary: Path) -> bool:
    return subprocess.run([str(binary), "buildx", "version"], capture_output=True, check=False).returncode == 0


def test_a_client_is_found_and_can_build() -> None:
    cli = find_cli()
    assert cli.argv[1:] == ("buildx", "build", "--load") or (cli.argv[1:] == ("build",) and
                                                              cli.env == {"DOCKER_BUILDKIT": "1"})
    assert Path(cli.argv[0]).exists()


@pytest.mark.skipif(not NEW_CLIENT.exists() or has_buildx(NEW_CLIENT),
                    reason="needs a docker 23+ client without buildx, as /usr/local/bin/docker is on these machines")
def test_a_new_client_without_buildx_is_refused_with_what_to_install() -> None:
    with pytest.raises(EngineError) as refused:
        find_cli((str(NEW_CLIENT),))
    message = str(refused.value)
    assert str(NEW_CLIENT) in message and "docker-buildx" in message and "setup.sh" in message


def test_no_client_at_all_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="found no docker client"):
        find_cli((str(tmp_path / "docker"),))
