"""A local HTTP server for the download tests: serves a folder as a dataset mirror
(``$MOCA_DATA_MIRROR``), so the real download path runs without the network."""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from pathlib import Path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve_folder(folder: Path, servers: list | None = None) -> str:
    """Start a threaded HTTP server on 127.0.0.1 serving ``folder``; its URL (ends in ``/``).
    The server is appended to ``servers`` so that the caller can shut it down."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if servers is not None:
        servers.append(server)
    return f"http://127.0.0.1:{server.server_address[1]}/"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
