"""A loopback HTTP server for download tests: serves a folder, and misbehaves on request.

    with LoopbackServer(folder) as server:
        server.misbehave("/big.glb", "huge")      # announces 10 GB
        download(server.url + "/big.glb", ...)

Behaviours of a path: "huge" (a Content-Length far past any limit), "endless" (no
Content-Length, bytes until the client stops reading), "stall" (headers and a few bytes, then
silence until the server closes). ``requests`` lists every path asked for, in order.
"""

from __future__ import annotations

import http.server
import threading
import urllib.parse
from pathlib import Path

BEHAVIOURS = ("huge", "endless", "stall")


class LoopbackServer:
    """An HTTP server on 127.0.0.1 (an ephemeral port) in a background thread."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.requests: list[str] = []
        self.behaviour: dict[str, str] = {}
        self.closing = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def misbehave(self, path: str, behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"behaviour {behaviour!r}: use one of {BEHAVIOURS}")
        self.behaviour[path] = behaviour

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                behaviour = server.behaviour.get(self.path)
                if behaviour == "huge":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 * 10**9))
                    self.end_headers()
                    self.wfile.write(b"\0" * 1024)
                elif behaviour == "endless":
                    self.send_response(200)
                    self.end_headers()
                    try:
                        while not server.closing.is_set():
                            self.wfile.write(b"\0" * 65536)
                    except OSError:
                        pass
                elif behaviour == "stall":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"\0" * 10)
                    self.wfile.flush()
                    server.closing.wait()
                else:
                    self._send_file()

            def _send_file(self) -> None:
                path = (server.root / urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")).resolve()
                if not path.is_file() or not path.is_relative_to(server.root.resolve()):
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
