"""A hostile server on loopback, for the fuzz tests: it answers each request with what an
answer function makes of it (bodies whole, endless or a byte at a time), never sends more
than BODY_CAP bytes nor trickles for longer than TRICKLE_SECONDS, and logs every request."""

import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from proxy import SHUTDOWN_POLL

MB = 1 << 20
BODY_CAP = 200 * MB  # an endless body ends here, so that a client that never stops still ends
TRICKLE_SECONDS = 60  # a slow body sends one byte a second for at most this long


@dataclass
class Asked:
    """A request as the answer functions see it."""

    method: str
    target: str  # as the request line gave it: path and query
    path: str
    query: dict  # each parameter's last value
    base_url: str  # the server's own, for answers that point back at it

    @property
    def page(self):
        try:
            return int(self.query.get("page", 1))
        except ValueError:
            return 1


@dataclass
class Reply:
    status: int = 200
    # bytes: sent whole, with a content-length; a callable: a generator of chunks, sent
    # chunked as they come.
    body: object = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    # Whether a correct client may succeed on this answer (a lie it cannot see through, an
    # identification it can do without); one that cannot be a memory API's is garbage,
    # and a success after it is silent.
    honest: bool = False


def endless(prefix, unit):
    """A body that starts with prefix and repeats unit until the client stops reading,
    or BODY_CAP is sent."""

    def chunks():
        yield prefix
        block = unit * max(1, MB // len(unit))
        for _ in range(BODY_CAP // len(block)):
            yield block

    return chunks


def trickle(text):
    """A body sent one byte a second, for at most TRICKLE_SECONDS."""

    def chunks():
        for byte in text[:TRICKLE_SECONDS]:
            yield bytes([byte])
            time.sleep(1)

    return chunks


@dataclass
class Logged:
    line: str  # "METHOD TARGET", as outside_memory_api reads it
    honest: bool  # what the server answered it with was honest


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hangs up mid-answer is what these tests expect: no stack for it."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HostileServer:
    """Answers every request with `answer(Asked) -> Reply`, on a port of its own."""

    def __init__(self, answer):
        self.answer = answer
        self.log = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # for chunked bodies

            def handle_any(self):
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                target = self.path
                parts = urlsplit(target)
                asked = Asked(self.command, target, parts.path, dict(parse_qsl(parts.query)), outer.url)
                reply = outer.answer(asked)
                outer.log.append(Logged(f"{self.command} {target}", reply.honest))
                try:
                    self.send(reply)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def send(self, reply):
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status in (204, 304):
                    self.end_headers()
                    return
                self.send_header("content-type", reply.content_type)
                if isinstance(reply.body, bytes):
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(reply.body)
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for chunk in reply.body():
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                # An endless body that reached its cap ends as a cut connection, not a whole answer.
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = handle_any

            def log_message(self, *args):
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    @property
    def requests(self):
        return [logged.line for logged in self.log]

    def garbage_answered(self):
        """The requests that were answered with garbage."""
        return [logged.line for logged in self.log if not logged.honest]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
