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
    uv run scripts/dev_server.py --jwt-key "$JWT_VERIFICATION_KEY" --user-isolation
    uv run scripts/dev_server.py --jwt-key "$JWT_VERIFICATION_KEY" --mint-token alice --scopes memories:read

No model API key is needed: the memory endpoints never call a model. Three auth
modes, as AgentOS deployments run them:
- none (the default);
- a static key: set OS_SECURITY_KEY to require `Authorization: Bearer <key>`;
- JWT: --jwt-key (or $JWT_VERIFICATION_KEY) verifies HS256 tokens with scopes
  (memories:read, memories:write, memories:delete, agent_os:admin), and
  --user-isolation limits every non-admin token to its own user's memories.
--mint-token prints a token for a user, signed with --jwt-key, and exits.
"""

import argparse
import os
import socket
import sys
from pathlib import Path

DEFAULT_DB_FILE = Path("tmp") / "agentos.db"
JWT_ALGORITHM = "HS256"  # symmetric, so one key both signs (--mint-token) and verifies
MEMORY_SCOPES = "memories:read,memories:write,memories:delete"


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
        "--jwt-key",
        default=os.environ.get("JWT_VERIFICATION_KEY"),
        help="require JWTs signed (HS256) with this key (default: $JWT_VERIFICATION_KEY; unset: no JWT)",
    )
    parser.add_argument("--jwt-audience", help="with --jwt-key: also require this 'aud' claim")
    parser.add_argument(
        "--user-isolation",
        action="store_true",
        help="with --jwt-key: limit every non-admin token to the memories of its own user (its 'sub')",
    )
    parser.add_argument(
        "--user-directory",
        action="store_true",
        help="with --jwt-key: keep a directory of users (admins can disable one at /users)",
    )
    parser.add_argument(
        "--mint-token",
        metavar="USER",
        help="print a JWT for USER signed with --jwt-key, then exit (for local testing only)",
    )
    parser.add_argument(
        "--scopes",
        default=MEMORY_SCOPES,
        help="with --mint-token: comma-separated scopes (default: %(default)s; agent_os:admin for an admin)",
    )
    parser.add_argument("--expires-in", type=int, default=3600, help="with --mint-token: seconds (default: 3600)")
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


def build_authorization(args: argparse.Namespace):
    if not args.jwt_key:
        return False
    from agno.os import Authorization

    audience = {"verify_audience": True, "audience": args.jwt_audience} if args.jwt_audience else {}
    return Authorization(verification_keys=[args.jwt_key], algorithm=JWT_ALGORITHM, **audience)


def mint_token(args: argparse.Namespace) -> int:
    if not args.jwt_key:
        print("error: --mint-token needs --jwt-key (or $JWT_VERIFICATION_KEY) to sign with", file=sys.stderr)
        return 2
    from agno.os import create_dev_token

    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
    print(
        create_dev_token(
            args.mint_token,
            secret=args.jwt_key,
            scopes=scopes,
            audience=args.jwt_audience,
            expires_in=args.expires_in,
            algorithm=JWT_ALGORITHM,
        )
    )
    return 0


def port_in_use(host: str, port: int) -> str | None:
    """Why the port cannot be bound, or None: checked before anything is announced."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.strerror or str(error)
    return None


def main() -> int:
    args = build_parser().parse_args()
    # The dev server must run on a machine with no network beyond loopback.
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    if args.mint_token:
        return mint_token(args)
    if (args.user_isolation or args.jwt_audience or args.user_directory) and not args.jwt_key:
        print("error: --user-isolation, --user-directory and --jwt-audience need --jwt-key", file=sys.stderr)
        return 2
    problem = port_in_use(args.host, args.port)
    if problem:
        print(f"error: cannot listen on {args.host}:{args.port}: {problem}", file=sys.stderr)
        return 1

    # agno and uvicorn log to stdout; a server's stdout carries nothing else, so the
    # logs go where logs belong and a caller's stdout stays clean.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    import uvicorn
    from agno.os import AgentOS

    agent_os = AgentOS(
        id="agentos-api-memory-dev",
        description="Local AgentOS for the agentos-api-memory skill",
        db=build_db(args),
        authorization=build_authorization(args),
        user_isolation=args.user_isolation,
        user_directory=True if args.user_directory else None,
    )
    where = args.db_url.split("@")[-1] if args.db_url else args.db_file
    if args.jwt_key:
        auth = "JWT required" + (", user isolation on" if args.user_isolation else "")
    elif os.environ.get("OS_SECURITY_KEY"):
        auth = "Bearer token required"
    else:
        auth = "no authentication"
    app = agent_os.get_app()
    if args.access_log:
        log_requests(app, args.access_log)
    print(f"AgentOS memory API on http://{args.host}:{args.port} (db: {where}; {auth})", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
