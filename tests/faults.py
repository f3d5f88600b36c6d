"""Small real servers on loopback that misbehave on purpose, for faults an AgentOS won't show."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from proxy import SHUTDOWN_POLL


class FaultServer:
    """Answers every request with `answer(method, path) -> (status, content_type, body)`.

    `answer` may return None to drop the connection without a response.
    Every request line is recorded in `requests`.
    """

    def __init__(self, answer):
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                outer.requests.append(f"{self.command} {self.path}")
                reply = answer(self.command, self.path)
                if reply is None:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, content_type, body = reply
                payload = body if isinstance(body, bytes) else body.encode()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "http://192.0.2.1/elsewhere")
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_any

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class SilentServer:
    """Accepts connections and never answers."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.accepted = []
        self.thread = threading.Thread(target=self.accept_forever, daemon=True)

    def accept_forever(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.accepted.append(connection)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.socket.close()
        for connection in self.accepted:
            connection.close()


def html(status=200):
    return lambda method, path: (status, "text/html", "<html><body><h1>Welcome to nginx!</h1></body></html>")


def json_answer(body, status=200):
    return lambda method, path: (status, "application/json", json.dumps(body))


def memory_page(memory_count, total_count, page_limit=500):
    memories = [
        {
            "memory_id": f"m-{n}",
            "memory": f"fact {n}",
            "topics": [],
            "agent_id": None,
            "team_id": None,
            "user_id": "alice",
            "updated_at": "2026-11-24T00:00:00Z",
        }
        for n in range(memory_count)
    ]
    meta = {"page": 1, "limit": page_limit, "total_pages": -(-total_count // page_limit), "total_count": total_count}
    return json.dumps({"data": memories, "meta": meta})


# A memory as an AgentOS answers a create: the one AgentOSThenFault stores.
CREATED = {
    "memory_id": "m-journaled",
    "memory": "stored before the server went wrong",
    "topics": [],
    "agent_id": None,
    "team_id": None,
    "user_id": "alice",
    "updated_at": "2026-12-02T00:00:00Z",
}


class AgentOSThenFault:
    """An answer that plays a small AgentOS (empty listings, a create answered with
    CREATED) until fail(), then answers as `fault`: so that this machine's journal can
    hold an operation on a server that misbehaves afterwards."""

    def __init__(self, fault):
        self.fault = fault
        self.failing = False

    def fail(self):
        self.failing = True

    def __call__(self, method, path):
        if self.failing:
            return self.fault(method, path)
        if method == "GET" and path.startswith("/memories?"):
            page = {"data": [], "meta": {"page": 1, "limit": 1, "total_pages": 0, "total_count": 0}}
            return 200, "application/json", json.dumps(page)
        if method == "POST" and path == "/memories":
            return 200, "application/json", json.dumps(CREATED)
        return 404, "application/json", json.dumps({"detail": "Not Found"})
