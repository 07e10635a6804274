"""The server's own PostgreSQL role: one that may read the store and write nothing.

``serve`` refuses to start on a role that holds any write privilege on the store's tables (a superuser, the
tables' owner, or a role granted INSERT, UPDATE, DELETE or TRUNCATE), whatever its sessions promise, so a
bug or a hostile request can never change a prediction. ``create_reader`` makes such a role (run as the
store's owner); docs/serve.md gives the same SQL to run by hand.
"""
from __future__ import annotations

import logging

from stack_builder.errors import StackError, shown
from stack_builder.precalc.schema import pg_connect
from stack_builder.precalc.urls import StoreUrl

LOGGER = logging.getLogger(__name__)

WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
# Every table and partitioned table outside PostgreSQL's own schemas, with each write privilege the session's
# role holds on it.
_WRITABLE = """
SELECT n.nspname || '.' || c.relname, p.privilege
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(%s::text[]) AS p(privilege)
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_%%' AND has_table_privilege(c.oid, p.privilege)
ORDER BY 1, 2
"""


def write_grants(where: StoreUrl) -> list[str]:
    """What the role of ``where`` may change, as "INSERT on public.predictions"; [] for a read-only role
    (and for DuckDB, which the server opens read-only)."""
    if not where.dsn:  # a DuckDB file
        return []
    conn = pg_connect(where, read_only=True)
    try:
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        found = [f"{privilege} on {table}" for table, privilege in conn.execute(_WRITABLE, [list(WRITES)])]
        return (["superuser"] if superuser and superuser[0] else []) + found
    finally:
        conn.close()


def check_read_only(where: StoreUrl) -> None:
    """StackError unless the role of ``where`` can write nothing in the store."""
    grants = write_grants(where)
    if grants:
        listed = ", ".join(grants[:6]) + (f" and {len(grants) - 6} more" if len(grants) > 6 else "")
        raise StackError(f"--store {where.shown}: this role can write the store ({listed}); serve reads with a "
                         "role of its own that has no write grant: create one with the SQL in docs/serve.md "
                         "(GRANT SELECT only) and give its URL")


def create_reader(admin: StoreUrl, role: str, password: str) -> None:
    """Create (or update) ``role``: it may log in with ``password`` and read every table of the store's
    schema, now and later, and nothing else. Run with the store owner's URL."""
    from psycopg import sql

    if not admin.dsn:
        raise StackError(f"{admin.shown}: database roles are PostgreSQL's; a DuckDB store is opened read-only")
    conn = pg_connect(admin)
    try:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        verb = "ALTER" if exists else "CREATE"
        name, secret = sql.Identifier(role), sql.Literal(password)
        with conn.transaction():
            conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD {}")
                         .format(name, secret))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(conn.info.dbname), name))
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(name))
            conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {}")
                         .format(name))
        LOGGER.info("role %s may read the store %s, and write nothing", shown(role, 63), admin.shown)
    finally:
        conn.close()
