"""Which engine takes a job, and the --engines file, without engines (test_engines_integration.py has them)."""
from __future__ import annotations

from pathlib import Path

import pytest

from stack_builder.errors import StackError
from stack_builder.farm import engines_file
from stack_builder.farm.dispatch import Load


def test_a_job_goes_to_the_engine_that_built_its_parent_while_it_has_room() -> None:
    load = Load(workers=1, built_on={("root", "linux/arm64"): "b"})
    assert load.choose(["a", "b"], "root", "linux/arm64") == "b"
    load.start("b")
    assert load.choose(["a", "b"], "root", "linux/arm64") == "a"  # b is full: the other engine of the pool
    load.start("a")
    assert load.choose(["a", "b"], "root", "linux/arm64") is None  # every engine busy: the job waits
    load.finish("a", "child", "linux/arm64", ok=True)
    assert load.built_on[("child", "linux/arm64")] == "a"
    assert load.choose(["a", "b"], None, "linux/arm64") == "a"


def test_the_least_busy_engine_then_the_first_and_never_a_lost_one() -> None:
    load = Load(workers=3)
    load.start("a")
    assert load.choose(["a", "b"], None, "linux/amd64") == "b"
    load.start("b")
    assert load.choose(["a", "b"], None, "linux/amd64") == "a"  # equally busy: the file's order
    load.lost["a"] = "gone"
    assert load.choose(["a", "b"], None, "linux/amd64") == "b"
    assert load.alive(["a", "b"]) == ["b"]
    load.lost["b"] = "gone"
    assert load.choose(["a", "b"], None, "linux/amd64") is None and load.alive(["a", "b"]) == []


def test_a_failed_job_is_not_remembered_as_a_cache() -> None:
    load = Load(workers=1)
    load.start("a")
    load.finish("a", "root", "linux/amd64", ok=False)
    assert load.built_on == {} and load.running == {"a": 0}


def test_the_engines_file_makes_pools_per_platform(tmp_path: Path) -> None:
    tls = tmp_path / "certs"
    tls.mkdir()
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tls / name).write_text("x")
    engines = engines_file.parse({"engines": [
        {"name": "a", "platforms": ["linux/amd64"], "endpoint": "unix:///var/run/docker.sock"},
        {"name": "arm-1", "platforms": ["linux/arm64"], "endpoint": "tcp://10.0.0.5:2376", "tls": "certs"},
        {"name": "arm-2", "platforms": ["linux/arm64", "linux/arm/v7"], "endpoint": "ssh://builder@arm-2"}]},
        "engines.yml", base=tmp_path)
    assert [e.name for e in engines.pool("linux/arm64")] == ["arm-1", "arm-2"]
    assert engines.platforms() == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    arm1 = engines.pool("linux/arm64")[0].endpoint
    assert arm1.tls == tls and arm1.env() == {"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1",
                                              "DOCKER_CERT_PATH": str(tls)}
    assert engines.pool("linux/arm64")[1].endpoint.env() == {"DOCKER_HOST": "ssh://builder@arm-2"}


@pytest.mark.parametrize("data, said", [
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "unix:///x"}] * 2},
     "engine names are unique; a is used more than once"),
    ({"engines": [{"name": "a b", "platforms": ["linux/amd64"], "endpoint": "unix:///x"}]}, "engines[0].name"),
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "unix:///x", "port": 1}]},
     "engines[0]: unknown key(s) port"),
    ({"engines": [{"name": "a", "platforms": ["linux/amd64"], "endpoint": "ssh://h", "tls": "certs"}]},
     "engines[0].tls: TLS client files are for a tcp:// endpoint"),
    ({"engines": [{"name": "a", "platforms": [], "endpoint": "unix:///x"}]}, "engines[0].platforms"),
    ({"engine": []}, "the file holds one key, `engines:`"),
])
def test_a_bad_engines_file_names_the_key(tmp_path: Path, data: object, said: str) -> None:
    with pytest.raises(StackError) as caught:
        engines_file.parse(data, "engines.yml", base=tmp_path)
    assert said in str(caught.value) and str(caught.value).startswith("engines.yml")


def test_a_missing_engines_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match=r"--engines .*nowhere.yml: cannot be read"):
        engines_file.load(tmp_path / "nowhere.yml")
