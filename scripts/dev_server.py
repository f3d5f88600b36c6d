# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "agno[os]>=3.1.10",
#     "sqlalchemy>=2",
#     "psycopg[binary]>=3.2",
# ]
#
# [tool.uv]
# compile-bytecode = true
# ///
"""Start a real AgentOS that serves the memory API, for development and tests.

    uv run scripts/dev_server.py                      # SQLite in tmp/agentos.db, port 7777
    uv run scripts/dev_server.py --port 8000 --db-file /tmp/memories.db
    uv run scripts/dev_server.py --db-url postgresql+psycopg://user:pass@127.0.0.1:5432/agno

No model API key is needed: the memory endpoints never call a model. Set
OS_SECURITY_KEY in the environment to require `Authorization: Bearer <key>`.
"""

import argparse
import os
import sys
from pathlib import Path

DEFAULT_DB_FILE = Path("tmp") / "agentos.db"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Start a local AgentOS with the memory API (no model key needed).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=7777, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--db-file",
        type=Path,
        default=DEFAULT_DB_FILE,
        help="SQLite file that holds the memories (default: %(default)s)",
    )
    parser.add_argument(
        "--db-url",
        help="SQLAlchemy URL of a PostgreSQL database to use instead of SQLite "
        "(postgresql+psycopg://user:password@host:port/dbname)",
    )
    parser.add_argument(
        "--access-log",
        type=Path,
        help="append 'METHOD PATH?QUERY STATUS' for every request to this file (used by the tests)",
    )
    return parser


def log_requests(app, log_file):
    """Record every request the server answers, so tests can see where calls went."""

    @app.middleware("http")
    async def record(request, call_next):
        response = await call_next(request)
        query = f"?{request.url.query}" if request.url.query else ""
        with open(log_file, "a", encoding="utf-8") as log:
            log.write(f"{request.method} {request.url.path}{query} {response.status_code}\n")
        return response


def build_db(args: argparse.Namespace):
    if args.db_url:
        from agno.db.postgres import PostgresDb

        return PostgresDb(db_url=args.db_url, id="dev")
    from agno.db.sqlite import SqliteDb

    args.db_file.parent.mkdir(parents=True, exist_ok=True)
    return SqliteDb(db_file=str(args.db_file), id="dev")


def main() -> int:
    args = build_parser().parse_args()
    # The dev server must run on a machine with no network beyond loopback.
    os.environ.setdefault("AGNO_TELEMETRY", "false")

    import uvicorn
    from agno.os import AgentOS

    agent_os = AgentOS(
        id="agentos-api-memory-dev",
        description="Local AgentOS for the agentos-api-memory skill",
        db=build_db(args),
    )
    where = args.db_url.split("@")[-1] if args.db_url else args.db_file
    auth = "Bearer token required" if os.environ.get("OS_SECURITY_KEY") else "no authentication"
    print(f"AgentOS memory API on http://{args.host}:{args.port} (db: {where}; {auth})", file=sys.stderr, flush=True)
    app = agent_os.get_app()
    if args.access_log:
        log_requests(app, args.access_log)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
