"""A real PostgreSQL server for the tests: the one `setup.sh` started (its admin URL in STACK_TEST_POSTGRES),
or a throwaway cluster of the tests' own (Debian's postgresql package), and a fresh database per test.

PostgreSQL refuses to run as root: as root, the cluster runs as the `postgres` user, in a folder it owns.
Host connections need a password (scram-sha-256), so the URLs carry real credentials.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg

URL_VAR = "STACK_TEST_POSTGRES"


def binaries() -> Path:
    """The folder of initdb and pg_ctl: Debian's newest, else wherever pg_ctl is on PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path is None:
        raise RuntimeError("PostgreSQL is not installed (no pg_ctl); run `bash setup.sh env` first "
                           "(it installs Debian's postgresql)")
    return Path(on_path).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_owner() -> dict[str, Any]:
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


@contextlib.contextmanager
def running_postgres() -> Iterator[str]:
    """A cluster of its own, started now and stopped (and removed) at the end; yields its admin URL."""
    bin_dir = binaries()
    folder = Path(tempfile.mkdtemp(prefix="stack-test-pg-"))
    data = folder / "data"
    password = secrets.token_hex(16)
    (folder / "pw").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pw", "postgres", "postgres")
    port = free_port()
    owner = _as_owner()
    try:
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                        "--auth-host=scram-sha-256", f"--pwfile={folder / 'pw'}", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, **owner)
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-t", "60", "-l", str(folder / "log"),
                        "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        "-c max_connections=200", "start"], check=True, capture_output=True, **owner)
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr!r} {log[-2000:]}") from None
    try:
        yield f"postgresql://postgres:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       check=False, **owner)
        shutil.rmtree(folder, ignore_errors=True)


def admin_url() -> str:
    """The server `setup.sh` started, if it exported one."""
    return os.environ.get(URL_VAR, "")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, ""))


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin`` (a superuser's URL), dropped at the end; yields its
    URL, with the admin's credentials."""
    name = "t_" + secrets.token_hex(8)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
