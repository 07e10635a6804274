"""`serve` on a real PostgreSQL store, through its own read-only role; tags through a real registry; and the
API under load (20 concurrent clients for 30 s: no error, p99 latency reported)."""
from __future__ import annotations

import json
import random
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import httpx
import psycopg
import pytest

from stack_builder.precalc import urls
from stack_builder.serving import roles
from stack_builder.serving.service import NOT_PRECALCULATED

from stacks import STACK_BUILDER, push_two_platform_index
from test_serve import HOSTILE, IRIS, check_numbers_passed_on, check_store_over_http, fill_store, serve, stack, started  # noqa: F401

pytestmark = pytest.mark.integration

READER_PASSWORD = "reader-" + "x" * 24
CLIENTS, LOAD_SECONDS, KEYS_PER_REQUEST = 20, 30.0, 100


@pytest.fixture
def reader(postgres_db: str) -> Iterator[str]:
    """The URL of a role of the server's own on the test's database (made before the store's tables: its
    grant covers tables made later too); it may read, and write nothing. Dropped after the test."""
    role = "reader_" + postgres_db.rsplit("/", 1)[1]
    roles.create_reader(urls.parse(postgres_db), role, READER_PASSWORD)
    yield f"postgresql://{role}:{READER_PASSWORD}@{postgres_db.split('@', 1)[1]}"
    with psycopg.connect(postgres_db, autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{role}"')
        conn.execute(f'DROP ROLE "{role}"')


def test_the_api_over_a_real_postgresql_store_through_a_role_that_cannot_write(postgres_db: str, reader: str) -> None:
    fill_store(postgres_db, "iris-model", IRIS, HOSTILE)
    url = reader
    assert roles.write_grants(urls.parse(url)) == []
    assert "superuser" in roles.write_grants(urls.parse(postgres_db))
    with psycopg.connect(url, autocommit=True) as conn:  # the grant stops it, not only the session's promise
        for statement in ("INSERT INTO predictions (digest, key, image, vals) VALUES ('d', 'k', 'i', '[]')",
                          "DELETE FROM predictions", "UPDATE models SET columns = '[]'", "TRUNCATE predictions",
                          "CREATE TABLE mine (x int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    check_store_over_http(url, IRIS)
    check_numbers_passed_on(postgres_db, url)


@pytest.fixture
def serving(stack: Path, postgres_db: str, reader: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`stack-builder serve` in a process of its own, on a PostgreSQL store of 10,000 keys, as its reader."""
    fill_store(postgres_db, "base-model", IRIS, [f"k{n}" for n in range(10_000)])
    with (stack.parent / "access.log").open("w") as log:  # (a pipe nobody reads would fill, and stop the server)
        proc = serve(stack, "--store", reader, stdout=log)
        try:
            yield started(proc), proc
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=60)


def test_serve_refuses_a_role_that_can_write_and_never_shows_its_password(stack: Path, postgres_db: str) -> None:
    fill_store(postgres_db, "base-model", IRIS, ["a"])
    password = postgres_db.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    proc = serve(stack, "--store", postgres_db)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "this role can write the store (superuser" in err
    assert password not in out + err and "postgresql://postgres:***@" in err


def test_a_tag_is_resolved_through_the_registry(stack: Path, postgres_db: str, reader: str, registry: str) -> None:
    digest, _ = push_two_platform_index(registry, "my-org/base-model", "stable")
    fill_store(postgres_db, "base-model", digest, ["a"])
    proc = serve(stack, "--store", reader, env={"STACK_REGISTRY": registry})
    try:
        base = started(proc)
        answer = httpx.post(f"{base}/models/base-model/predict", json={"keys": ["a", "b"]}).json()
        assert answer["digest"] == digest and answer["tag"] == "stable"
        assert [r["status"] for r in answer["results"]] == ["found", NOT_PRECALCULATED]
        missing = httpx.post(f"{base}/models/base-model/predict", json={"keys": ["a"], "tag": "2020.1-nope"})
        assert missing.status_code == 404 and missing.json()["error"] == "unknown tag"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)


def test_the_api_under_20_concurrent_clients_for_30_s(serving: tuple[str, subprocess.Popen[str]],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base, _ = serving
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def client(seed: int) -> None:
        chooser = random.Random(seed)
        with httpx.Client(base_url=base, timeout=30) as http:
            while time.monotonic() < deadline:
                keys = [f"k{chooser.randrange(12_000)}" for _ in range(KEYS_PER_REQUEST)]
                started_at = time.perf_counter()
                try:
                    answer = http.post("/models/base-model/predict", json={"keys": keys, "digest": IRIS})
                    ok = answer.status_code == 200 and len(answer.json()["results"]) == KEYS_PER_REQUEST
                    why = f"{answer.status_code} {answer.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                with lock:
                    latencies.append(time.perf_counter() - started_at)
                    if not ok:
                        failures.append(why)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    p50, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    with capsys.disabled():
        print(f"\nserve under load: {CLIENTS} clients, {LOAD_SECONDS:.0f} s, {len(latencies)} requests of "
              f"{KEYS_PER_REQUEST} keys ({len(latencies) / LOAD_SECONDS:.0f}/s), p50 {p50 * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, errors {len(failures)}")
    assert not failures, failures[:5]
    assert len(latencies) > CLIENTS


def test_the_access_log_of_the_command_names_no_credentials(stack: Path, postgres_db: str, reader: str) -> None:
    fill_store(postgres_db, "base-model", IRIS, ["a"])
    proc = serve(stack, "--store", reader)
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()
        while " on http://" not in first and first:
            first += proc.stderr.readline()
        base = first.rsplit(" on ", 1)[1].split()[0]
        httpx.post(f"{base}/models/base-model/predict", json={"keys": ["a"], "digest": IRIS},
                   headers={"Authorization": f"Basic {READER_PASSWORD}"})
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert [json.loads(line)["status"] for line in out.splitlines()] == [200]
    assert ":***@127.0.0.1" in first and READER_PASSWORD not in first + out + err
