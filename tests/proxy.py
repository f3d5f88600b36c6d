"""A real HTTP proxy on loopback in front of a real AgentOS, that holds a request back
until the test says so: writes land between two pages of a walk, every time."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

# How often a loopback server's loop looks whether shutdown() was asked (serve_forever's
# poll_interval): shutdown() waits for that look, and the default 0.5 s was half a second
# of idle wait on leaving each of the hundreds of `with` blocks of these servers.
SHUTDOWN_POLL = 0.02


class LoopbackProxy:
    """What the tests' proxies share: a threading HTTP server on loopback in front of
    `target`, with one httpx client to forward through, started and stopped by `with`."""

    def listen(self, handler, port=0):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.closing()
        self.server.shutdown()
        self.server.server_close()
        self.client.close()

    def closing(self):
        """What a proxy does before it stops (let held requests go)."""


class GatedProxy(LoopbackProxy):
    """Forwards everything to `target`; the `hold`-th GET /memories waits for release().
    Keeps the JSON body of each bulk DELETE /memories it forwards, in `deletes`; from
    the `fail_delete`-th one on it answers 500 itself, as a server whose database failed;
    from the `drop_delete`-th one on it forwards the DELETE, then drops the connection
    without an answer, as a server that died after deleting.
    With `cap`, pages of GET /memories hold at most that many rows, as on a server that
    caps its pages without saying so. `order` lists "GET" and "DELETE" as they arrived."""

    def __init__(self, target, hold=0, fail_delete=0, drop_delete=0, cap=0):
        self.target = target
        self.hold = hold
        self.fail_delete = fail_delete
        self.drop_delete = drop_delete
        self.cap = cap
        self.delete_count = 0
        self.pages = 0
        self.deletes = []
        self.order = []
        self.released = threading.Event()
        self.held = threading.Event()  # set when the held request has arrived
        self.client = httpx.Client(timeout=60)  # one pool for every request forwarded: no connect each time
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep the script's connections open: a new one per request is slow

            def do_GET(self):
                if self.path.startswith("/memories?"):
                    outer.order.append("GET")
                    if outer.cap:
                        query = parse_qs(urlsplit(self.path).query)
                        query["limit"] = [str(min(int(query["limit"][0]), outer.cap))]
                        self.path = "/memories?" + urlencode(query, doseq=True)
                    outer.pages += 1
                    if outer.pages == outer.hold:
                        outer.held.set()
                        outer.released.wait(60)
                self.forward()

            def do_other(self):
                self.forward()

            do_POST = do_PATCH = do_DELETE = do_other

            def forward(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "DELETE" and self.path.split("?")[0] == "/memories":
                    outer.order.append("DELETE")
                    outer.delete_count += 1
                    if outer.fail_delete and outer.delete_count >= outer.fail_delete:
                        return self.answer(500, b'{"detail": "the database failed"}')
                    outer.deletes.append(json.loads(body))
                headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host",)}
                reply = outer.client.request(self.command, outer.target + self.path, content=body, headers=headers)
                if self.command == "DELETE" and outer.drop_delete and outer.delete_count >= outer.drop_delete:
                    self.close_connection = True
                    return self.connection.shutdown(socket.SHUT_RDWR)
                self.send_response(reply.status_code)
                for key, value in reply.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.send_header("content-length", str(len(reply.content)))
                self.end_headers()
                self.wfile.write(reply.content)

            def answer(self, status, body):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.listen(Handler)

    def closing(self):
        self.released.set()
