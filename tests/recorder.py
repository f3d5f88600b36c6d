"""A recording proxy on loopback: forwards every request to a real AgentOS and keeps a
copy of each, so a test can compare what two clients sent for the same work."""

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import httpx
from proxy import LoopbackProxy

# Headers about one hop of the connection, not about the request or its answer. The
# answer's body is forwarded decoded, so its encoding and length are the proxy's own.
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict  # name -> every value sent, in order: a multi-map, as the server parses it
    body: bytes
    content_type: str | None  # the media type alone, without parameters such as charset

    def json(self):
        return json.loads(self.body) if self.body else None

    def __str__(self):
        query = "&".join(f"{name}={value}" for name, values in sorted(self.query.items()) for value in values)
        return f"{self.method} {self.path}{'?' + query if query else ''} {self.body.decode(errors='replace')}"


class RecordingProxy(LoopbackProxy):
    """Forwards to `target`; `requests` holds every request in the order it arrived."""

    def __init__(self, target):
        self.target = target
        self.requests = []
        self.client = httpx.Client(timeout=60)
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_any(self):
                body = self.read_body()
                url = urlsplit(self.path)
                content_type = self.headers.get("content-type")
                with proxy.lock:
                    proxy.requests.append(
                        RecordedRequest(
                            method=self.command,
                            path=url.path,
                            query=parse_qs(url.query, keep_blank_values=True),
                            body=body,
                            content_type=content_type.split(";")[0].strip().lower() if content_type else None,
                        )
                    )
                headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_HEADERS}
                answer = proxy.client.request(self.command, proxy.target + self.path, content=body, headers=headers)
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("content-length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_any

            def read_body(self):
                if self.headers.get("transfer-encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()  # the CRLF after each chunk
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers, which nothing here sends
                    return b"".join(chunks)
                length = int(self.headers.get("content-length") or 0)
                return self.rfile.read(length) if length else b""

            def log_message(self, *args):
                pass

        self.listen(Handler)
