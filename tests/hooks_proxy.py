"""A real HTTP proxy on loopback in front of a real AgentOS that lets a test step in
at the moment a write arrives: run something first (another command, a full disk),
or answer in the server's place (a failure), then let the write through."""

import threading
from http.server import BaseHTTPRequestHandler

import httpx
from proxy import LoopbackProxy

WRITES = ("POST", "PATCH", "DELETE")


class WriteHookProxy(LoopbackProxy):
    """Forwards every request to `target`. Each write (POST, PATCH, DELETE) first goes to
    `on_write(method, path, number)`, number counting the writes from 1, one call at a
    time; a (status, body) it returns is answered instead of forwarding the write.
    `writes` lists "METHOD PATH" of every write that arrived, in order. It listens on
    loopback, on `port` or else a free one."""

    def __init__(self, target, on_write=None, port=0):
        self.target = target
        self.on_write = on_write
        self.writes = []
        self.hook_lock = threading.Lock()
        self.client = httpx.Client(timeout=120)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def handle_request(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command in WRITES:
                    with outer.hook_lock:
                        outer.writes.append(f"{self.command} {self.path}")
                        hook = outer.on_write
                        answer = hook(self.command, self.path, len(outer.writes)) if hook else None
                    if answer is not None:
                        return self.reply(*answer, {"content-type": "application/json"})
                headers = {name: value for name, value in self.headers.items() if name.lower() != "host"}
                response = outer.client.request(self.command, outer.target + self.path, content=body, headers=headers)
                passed = {
                    name: value
                    for name, value in response.headers.items()
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding")
                }
                self.reply(response.status_code, response.content, passed)

            do_GET = do_POST = do_PATCH = do_DELETE = handle_request

            def reply(self, status, body, headers):
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.listen(Handler, port)


def server_failure(body=b'{"detail": "the database failed"}'):
    """What a server whose database failed answers."""
    return 500, body
