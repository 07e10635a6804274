"""`serve`: the lookup API, driven with a real HTTP client against a real uvicorn server.

The logic is tested on an in-memory reader; the whole API against a real DuckDB store (the default) and the
`stack-builder serve` command in a process of its own. PostgreSQL and the load test: test_serve_integration.py.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

import httpx
import pytest

from stack_builder import secrets
from stack_builder.precalc.reader import StoredModel, open_reader
from stack_builder.precalc.stores import open_store
from stack_builder.precalc.validate import Rows
from stack_builder.serving.questions import Limits
from stack_builder.serving.server import in_thread
from stack_builder.serving.service import NOT_PRECALCULATED, Service, ServiceOptions

from stacks import REPO, STACK_BUILDER

IRIS = "sha256:" + "1" * 64
OTHER = "sha256:" + "2" * 64
COLUMNS = (("species", "string"), ("probability", "float"), ("petals", "integer"), ("toxic", "boolean"))
ROWS: dict[str, dict[str, Any]] = {"r1": {"species": "setosa", "probability": 0.9, "petals": 9007199254740993, "toxic": False},
        "it's \"quoted\"": {"species": None, "probability": 0.25, "petals": -3, "toxic": True}}
PASSWORD = "hunter2-but-longer"


class FakeReader:
    """The store, in memory: models and rows per digest; ``broken`` makes every call fail as a lost server."""

    def __init__(self) -> None:
        self.stored: dict[StoredModel, dict[str, dict[str, Any]]] = {
            StoredModel("iris-model", IRIS, COLUMNS, len(ROWS)): dict(ROWS),
            StoredModel("other-model", OTHER, (("score", "float"),), 1): {"r1": {"score": 1.5}}}
        self.broken = False
        self.calls: list[str] = []

    def models(self) -> list[StoredModel]:
        self._check("models")
        return list(self.stored)

    def rows(self, digest: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        self._check("rows")
        table = next((rows for model, rows in self.stored.items() if model.digest == digest), {})
        return {key: table[key] for key in keys if key in table}

    def raw_rows(self, digest: str, keys: Sequence[str]) -> dict[str, str]:
        columns = next((model.columns for model in self.stored if model.digest == digest), ())
        return {key: json.dumps([row[name] for name, _ in columns]) for key, row in self.rows(digest, keys).items()}

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.broken:
            raise ConnectionError(f"server closed the connection (postgresql://serve:{PASSWORD}@db/hub)")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service(reader: FakeReader | None = None, clock: Clock | None = None, **options: Any) -> Service:
    tags = {("iris-model", "stable"): IRIS, ("iris-model", "2026.4-main"): OTHER}
    asked: list[tuple[str, str]] = []

    def lookup(image: str, tag: str) -> str | None:
        asked.append((image, tag))
        return tags.get((image, tag))

    made = Service(reader or FakeReader(), ServiceOptions(**options), tags=lookup,
                   spec_models={"iris-model": COLUMNS, "new-model": (("x", "float"),)}, clock=clock or Clock())
    made.asked = asked  # type: ignore[attr-defined]  # what the registry was asked, for the tests
    return made


def ask(served: Service, image: str, body: Any) -> dict[str, Any]:
    answer = served.predict(image, json.dumps(body).encode())
    parsed: dict[str, Any] = json.loads(answer.body)
    assert (answer.keys, answer.digest) == (len(parsed["results"]), parsed["digest"])
    return parsed


# -- the answers ------------------------------------------------------------------------------------------------

def test_each_key_gets_its_row_or_not_precalculated_naming_the_digest_in_the_order_asked() -> None:
    answer = ask(service(), "iris-model", {"keys": ["missing", "r1", "it's \"quoted\"", "r1"], "digest": IRIS})
    assert answer["digest"] == IRIS and answer["found"] == 3 and answer["missing"] == 1
    assert [r["key"] for r in answer["results"]] == ["missing", "r1", "it's \"quoted\"", "r1"]
    assert answer["results"][0] == {"key": "missing", "status": NOT_PRECALCULATED, "digest": IRIS}
    assert answer["results"][1] == {"key": "r1", "status": "found", "values": ROWS["r1"]}
    assert answer["columns"][0] == {"name": "species", "kind": "string"}


def test_values_as_a_list_follow_the_columns_order() -> None:
    answer = ask(service(), "iris-model", {"keys": ["r1", "nope"], "digest": IRIS, "values": "list"})
    assert answer["results"][0]["values"] == ["setosa", 0.9, 9007199254740993, False]
    assert [c["name"] for c in answer["columns"]] == [n for n, _ in COLUMNS]
    assert answer["results"][1]["status"] == NOT_PRECALCULATED


def test_a_tag_is_resolved_through_the_registry_and_reused_until_its_time_is_up() -> None:
    clock = Clock()
    served = service(clock=clock, tags_ttl_s=60)
    assert ask(served, "iris-model", {"keys": ["r1"]})["digest"] == IRIS  # the default tag: stable
    assert ask(served, "iris-model", {"keys": ["r1"], "tag": "stable"})["tag"] == "stable"
    assert served.asked == [("iris-model", "stable")]  # type: ignore[attr-defined]
    clock.now += 61
    ask(served, "iris-model", {"keys": ["r1"]})
    assert len(served.asked) == 2  # type: ignore[attr-defined]


def test_one_answer_never_mixes_digests() -> None:
    # 2026.4-main names a digest stored for another model: refused, not answered with that model's rows.
    served = service()
    with pytest.raises(Exception, match="is a digest of other-model, not of iris-model") as caught:
        ask(served, "iris-model", {"keys": ["r1"], "tag": "2026.4-main"})
    assert getattr(caught.value, "status") == 400
    answer = ask(served, "iris-model", {"keys": ["r1"], "digest": "sha256:" + "3" * 64})
    assert answer["results"] == [{"key": "r1", "status": NOT_PRECALCULATED, "digest": "sha256:" + "3" * 64}]


def test_a_model_of_the_spec_with_nothing_stored_answers_not_precalculated() -> None:
    served = service()
    digest = "sha256:" + "4" * 64
    answer = ask(served, "new-model", {"keys": ["a"], "digest": digest})
    assert answer["results"][0]["status"] == NOT_PRECALCULATED and answer["columns"] == [{"name": "x", "kind": "float"}]
    listed = served.models()["models"]
    assert {m["image"] for m in listed} == {"iris-model", "other-model", "new-model"}
    assert next(m for m in listed if m["image"] == "new-model")["digest"] is None


def test_a_digest_stored_since_the_list_was_read_is_found_without_waiting() -> None:
    reader, clock = FakeReader(), Clock()
    served = service(reader, clock, models_ttl_s=3600)
    fresh = "sha256:" + "5" * 64
    assert ask(served, "iris-model", {"keys": ["k"], "digest": fresh})["found"] == 0
    reader.stored[StoredModel("iris-model", fresh, COLUMNS, 1)] = {"k": ROWS["r1"]}
    clock.now += 2
    assert ask(served, "iris-model", {"keys": ["k"], "digest": fresh})["found"] == 1
    calls = reader.calls.count("models")
    ask(served, "iris-model", {"keys": ["k"], "digest": "sha256:" + "6" * 64})  # within a second: not reloaded
    assert reader.calls.count("models") == calls
    clock.now += 2
    ask(served, "iris-model", {"keys": ["k"], "digest": "sha256:" + "6" * 64})
    assert reader.calls.count("models") == calls + 1


def test_the_models_list_is_reloaded_in_the_background_while_requests_use_the_one_in_hand() -> None:
    reader, clock = FakeReader(), Clock()
    served = service(reader, clock, models_ttl_s=10)
    assert len(served.models()["models"]) == 3
    reader.stored[StoredModel("late-model", "sha256:" + "7" * 64, COLUMNS, 1)] = {}
    clock.now += 11
    assert "late-model" not in {m["image"] for m in served.models()["models"]}  # not waited for
    refresher = served.catalog.refresher
    assert refresher is not None
    refresher.join(10)
    assert "late-model" in {m["image"] for m in served.models()["models"]}


BAD = [
    (b"{", 400, "bad JSON"),
    (b"\xff\xfe", 400, "bad JSON"),
    (b"[\"r1\"]", 400, "bad request"),
    (b"[" * 100_000, 400, "bad JSON"),
    (json.dumps({"keys": ["r1"], "digest": IRIS, "limit": 3}).encode(), 400, "bad request"),
    (json.dumps({"digest": IRIS}).encode(), 400, "bad keys"),
    (json.dumps({"keys": [], "digest": IRIS}).encode(), 400, "bad keys"),
    (json.dumps({"keys": "r1", "digest": IRIS}).encode(), 400, "bad keys"),
    (json.dumps({"keys": [1], "digest": IRIS}).encode(), 400, "bad keys"),
    (json.dumps({"keys": [""], "digest": IRIS}).encode(), 400, "bad keys"),
    (b'{"keys": ["\\ud800"], "digest": "' + IRIS.encode() + b'"}', 400, "bad keys"),
    (json.dumps({"keys": ["r"] * 11, "digest": IRIS}).encode(), 400, "too many keys"),
    (json.dumps({"keys": ["x" * 33], "digest": IRIS}).encode(), 400, "key too long"),
    (json.dumps({"keys": ["r1"], "digest": IRIS, "tag": "stable"}).encode(), 400, "bad request"),
    (json.dumps({"keys": ["r1"], "digest": "sha256:ABC"}).encode(), 400, "bad digest"),
    (json.dumps({"keys": ["r1"], "tag": "no/such tag"}).encode(), 400, "bad tag"),
    (json.dumps({"keys": ["r1"], "tag": "nope"}).encode(), 404, "unknown tag"),
    (json.dumps({"keys": ["r1"], "digest": IRIS, "values": "table"}).encode(), 400, "bad request"),
]


@pytest.mark.parametrize(("body", "status", "kind"), BAD)
def test_bad_input_is_a_clear_4xx(body: bytes, status: int, kind: str) -> None:
    served = service(limits=Limits(max_keys=10, max_key_chars=32))
    with pytest.raises(Exception) as caught:
        served.predict("iris-model", body)
    assert (getattr(caught.value, "status", None), getattr(caught.value, "kind", None)) == (status, kind), caught.value
    assert len(str(caught.value)) < 400


def test_an_unknown_model_is_404_naming_the_models() -> None:
    with pytest.raises(Exception, match="iris-model, new-model, other-model") as caught:
        ask(service(), "nope", {"keys": ["r1"], "digest": IRIS})
    assert getattr(caught.value, "status") == 404


def test_a_store_that_does_not_answer_is_503_and_the_log_hides_its_password(caplog: pytest.LogCaptureFixture) -> None:
    secrets.remember(PASSWORD)
    reader = FakeReader()
    served = service(reader)
    reader.broken = True
    with pytest.raises(Exception) as caught:
        ask(served, "iris-model", {"keys": ["r1"], "digest": IRIS})
    assert getattr(caught.value, "status") == 503
    with pytest.raises(Exception):
        served.ready()
    assert "did not" in caplog.text and PASSWORD not in caplog.text


# -- over HTTP ------------------------------------------------------------------------------------------------

@pytest.fixture
def api() -> Iterator[tuple[str, FakeReader]]:
    reader = FakeReader()
    with in_thread(service(reader, limits=Limits(max_keys=10_000, max_body=64 * 1024))) as url:
        yield url, reader


def test_the_api_over_http(api: tuple[str, FakeReader]) -> None:
    url, _ = api
    with httpx.Client(base_url=url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        models = client.get("/models").json()["models"]
        assert {"image": "iris-model", "digest": IRIS, "rows": 2,
                "columns": [{"name": n, "kind": k} for n, k in COLUMNS]} in models
        answer = client.post("/models/iris-model/predict", json={"keys": ["r1", "nope"], "digest": IRIS})
        assert answer.status_code == 200 and answer.json()["results"][0]["values"]["petals"] == 9007199254740993
        spec = client.get("/openapi.json").json()
        assert spec["openapi"].startswith("3.") and "/models/{image}/predict" in spec["paths"]
        docs = client.get("/docs")
        assert docs.status_code == 200 and "POST /models/{image}/predict" in docs.text


def test_errors_over_http_are_json(api: tuple[str, FakeReader]) -> None:
    url, reader = api
    with httpx.Client(base_url=url) as client:
        assert client.get("/nowhere").json()["error"] == "not found"
        wrong = client.get("/models/iris-model/predict")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method not allowed"
        bad = client.post("/models/iris-model/predict", content=b"{not json")
        assert bad.status_code == 400 and bad.json()["error"] == "bad JSON"
        unknown = client.post("/models/nope/predict", json={"keys": ["a"], "digest": IRIS})
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown model"
        reader.broken = True
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_a_body_over_the_limit_is_413_whether_its_length_is_said_or_not(api: tuple[str, FakeReader]) -> None:
    url, _ = api
    big = json.dumps({"keys": ["k" * 1000] * 100, "digest": IRIS}).encode()
    with httpx.Client(base_url=url) as client:
        said = client.post("/models/iris-model/predict", content=big)
        assert said.status_code == 413 and said.json()["error"] == "too large"
        streamed = client.post("/models/iris-model/predict", content=iter([big[:40_000], big[40_000:]]))
        assert streamed.status_code == 413


def test_the_access_log_is_json_lines_without_credentials(api: tuple[str, FakeReader],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    url, _ = api
    secrets.remember(PASSWORD)
    caplog.set_level(logging.INFO, logger="stack_builder.serving.access")
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {PASSWORD}"}) as client:
        client.post("/models/iris-model/predict", json={"keys": ["r1", PASSWORD], "digest": IRIS},
                    params={"token": PASSWORD})
        client.post(f"/models/{PASSWORD}/predict", json={"keys": ["r1"], "digest": IRIS})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "stack_builder.serving.access"]
    assert lines[0]["status"] == 200 and lines[0]["keys"] == 2 and lines[0]["digest"] == IRIS
    assert lines[0]["path"] == "/models/iris-model/predict" and lines[0]["ms"] >= 0
    assert lines[1]["status"] == 404 and lines[1]["error"] == "unknown model"
    assert PASSWORD not in caplog.text


# -- a real DuckDB store, the default -------------------------------------------------------------------------

HOSTILE = ["r'1", 'r"2', "r;3 DROP TABLE predictions;--", "k" * 10_240, "\u00e9\u4e2d\U0001F600", "a\\b", "%_"]


def fill_store(url: str, image: str, digest: str, keys: list[str]) -> None:
    columns = list(COLUMNS)
    typed: list[list[Any]] = [[f"s{n}", n / 7, 2 ** 62 + n, n % 2 == 0] for n in range(len(keys))]
    typed[0] = [None, 0.1, -1, None]
    if len(typed) > 2:
        typed[2] = ["q\"\\\u00e9", 1.0, 0, True]  # a whole float stays a float; text is escaped
    with open_store(url) as store:
        store.ensure(columns, image)
        store.put(image, digest, [Rows(keys, typed, {"species": len(keys) - 1})], columns)


def check_store_over_http(url: str, digest: str) -> None:
    """The API over a real store: stored values exactly, hostile keys found, the rest not precalculated."""
    keys = [*HOSTILE, "r9"]
    with open_reader(url) as reader, in_thread(Service(reader, ServiceOptions())) as base:
        with httpx.Client(base_url=base, timeout=30) as client:
            listed = client.get("/models").json()["models"]
            assert [(m["image"], m["digest"], m["rows"]) for m in listed] == [("iris-model", digest, len(HOSTILE))]
            answer = client.post("/models/iris-model/predict", json={"keys": [*keys, "a\x00b"], "digest": digest})
            assert answer.status_code == 200, answer.text
            results = answer.json()["results"]
            as_lists = client.post("/models/iris-model/predict", json={"keys": [*keys, "a\x00b"], "digest": digest,
                                                                       "values": "list"})
    assert as_lists.status_code == 200 and as_lists.headers["content-type"] == "application/json", as_lists.text
    # the store's own text passed on: the same values, in the columns' order, with the same JSON types
    expected = [{**r, "values": [r["values"][n] for n, _ in COLUMNS]} if "values" in r else r for r in results]
    assert as_lists.json()["results"] == expected
    assert all(type(r["values"][1]) is float for r in as_lists.json()["results"] if "values" in r)
    assert results[2]["values"] == {"species": "q\"\\\u00e9", "probability": 1.0, "petals": 0, "toxic": True}
    assert results[0] == {"key": HOSTILE[0], "status": "found",
                          "values": {"species": None, "probability": 0.1, "petals": -1, "toxic": None}}
    assert results[1]["values"] == {"species": "s1", "probability": 1 / 7, "petals": 2 ** 62 + 1, "toxic": False}
    assert [r["status"] for r in results] == ["found"] * len(HOSTILE) + [NOT_PRECALCULATED] * 2
    assert results[-1]["digest"] == digest


NUMERIC = (("probability", "float"), ("petals", "integer"), ("toxic", "boolean"))
NUMERIC_ROWS: list[list[Any]] = [[1.0, 9007199254740993, True], [1e-300, -2 ** 63, None], [None, None, False],
                                 [-0.5, 0, True]]


def check_numbers_passed_on(writer: str, url: str) -> None:
    """A model without string columns: both shapes are written from the store's own text, and say exactly
    what the reader reads (a whole float stays a float, a 64-bit integer exact, null as null)."""
    keys = [f"n{n}" for n in range(len(NUMERIC_ROWS))]
    with open_store(writer) as store:
        store.ensure(list(NUMERIC), "numeric-model")
        store.put("numeric-model", OTHER, [Rows(keys, NUMERIC_ROWS, {})], list(NUMERIC))
    with open_reader(url) as reader, in_thread(Service(reader, ServiceOptions())) as base:
        typed = reader.rows(OTHER, keys)
        with httpx.Client(base_url=base, timeout=30) as client:
            answers = {shape: client.post("/models/numeric-model/predict",
                                          json={"keys": [*keys, "absent"], "digest": OTHER, "values": shape}).json()
                       for shape in ("object", "list")}
    assert [typed[k] for k in keys] == [dict(zip([n for n, _ in NUMERIC], row)) for row in NUMERIC_ROWS]
    objects, lists = answers["object"]["results"], answers["list"]["results"]
    assert [r.get("values") for r in objects] == [typed[k] for k in keys] + [None]
    assert [r.get("values") for r in lists] == [list(typed[k].values()) for k in keys] + [None]
    assert type(objects[0]["values"]["probability"]) is float and type(lists[0]["values"][0]) is float
    assert objects[-1] == {"key": "absent", "status": NOT_PRECALCULATED, "digest": OTHER}


def test_the_api_over_a_real_duckdb_store(tmp_path: Path) -> None:
    url = f"duckdb://{tmp_path / 'precalc.duckdb'}"
    fill_store(url, "iris-model", IRIS, HOSTILE)
    check_store_over_http(url, IRIS)
    check_numbers_passed_on(url, url)


# -- the command ------------------------------------------------------------------------------------------------

def started(proc: subprocess.Popen[str]) -> str:
    """The base URL the server's log names once it listens (or the log, failing)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if " on http://" in line:
            return line.rsplit(" on ", 1)[1].split()[0]
    raise AssertionError("the server did not start:\n" + "".join(seen[-30:]))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stack `init --model` made: its model image is base-model; nothing stored yet."""
    folder = tmp_path_factory.mktemp("serve") / "stack"
    folder.mkdir()
    subprocess.run([str(STACK_BUILDER), "-d", str(folder), "init", "--name", "base", "--model"], check=True,
                   capture_output=True)
    return folder


def serve(stack: Path, *args: str, env: dict[str, str] | None = None,
          stdout: IO[str] | int = subprocess.PIPE) -> subprocess.Popen[str]:
    """`stack-builder serve --port 0` on ``stack``, with no registry unless ``env`` names one."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACK_REGISTRY")}
    return subprocess.Popen([str(STACK_BUILDER), "-d", str(stack), "serve", "--port", "0", *args],
                            stdout=stdout, stderr=subprocess.PIPE, text=True, env={**clean, **(env or {})})


def test_stack_builder_serve_on_the_default_store(stack: Path) -> None:
    missing = serve(stack)
    out, err = missing.communicate(timeout=60)
    assert missing.returncode != 0 and "no prediction store at" in err + out
    fill_store(f"duckdb://{stack / 'artifacts' / 'precalc.duckdb'}", "base-model", IRIS, ["a", "b"])
    proc = serve(stack)
    try:
        base = started(proc)
        answer = httpx.post(f"{base}/models/base-model/predict", json={"keys": ["a", "z"], "digest": IRIS})
        assert [r["status"] for r in answer.json()["results"]] == ["found", NOT_PRECALCULATED]
        assert httpx.get(f"{base}/readyz").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [entry["path"] for entry in logged] == ["/models/base-model/predict", "/readyz"]
    assert proc.returncode in (0, 130)


@pytest.mark.parametrize(("args", "said"), [
    (["--store", "mysql://u:longpassword123@db/x"], "not a store URL"),
    (["--store", "duckdb:///nowhere/at/all.duckdb"], "no prediction store at duckdb:///nowhere/at/all.duckdb"),
    (["--max-keys", "0"], "--max-keys 0: at least 1"),
    (["--port", "70000"], "--port 70000: give a port from 1 to 65535"),
])
def test_the_command_refuses_bad_options_clearly(stack: Path, args: list[str], said: str) -> None:
    proc = serve(stack, *args)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and said in err, err[-2000:]
    assert "Traceback" not in err and "longpassword123" not in err


def test_a_port_in_use_is_a_clear_error(stack: Path) -> None:
    fill_store(f"duckdb://{stack / 'artifacts' / 'precalc.duckdb'}", "base-model", IRIS, ["a"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = serve(stack, "--port", str(taken.getsockname()[1]))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "cannot listen on 127.0.0.1:" in err and "Traceback" not in err


def test_listing_tasks_loads_no_web_server() -> None:
    code = "import stack_builder.apps.doit_tasks, sys; print([m for m in ('starlette', 'uvicorn', 'httpx', " \
           "'psycopg', 'stack_builder.serving') if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"
