"""An AgentOS of whatever agno release the running Python has, on SQLite, no auth.

The tests run it with the Python of a per-release environment (releases.py) to
check the script against servers that owners still deploy. Releases before 2.4
have no `AgentOS(db=...)`: there the memory API serves the databases of the
agents it hosts, so the server hosts one agent that keeps its memories in the
database given; 2.x names the server's id `os_id`, 3.x `id`.
"""

import argparse
import inspect
import os

os.environ.setdefault("AGNO_TELEMETRY", "false")
# Agents of old releases pick an OpenAI model when built, and the client wants a key;
# nothing here calls a model.
os.environ.setdefault("OPENAI_API_KEY", "not-used")

import uvicorn
from agno.agent import Agent
from agno.db.sqlite import SqliteDb
from agno.os import AgentOS


def build_app(db_file):
    db = SqliteDb(db_file=db_file)
    accepts = inspect.signature(AgentOS.__init__).parameters
    options = {"id" if "id" in accepts else "os_id": "release-under-test"}
    if "db" in accepts:
        options["db"] = db
    else:
        options["agents"] = [Agent(name="memory-host", db=db)]
    return AgentOS(**options).get_app()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-file", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.db_file), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
