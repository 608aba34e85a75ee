"""A real HTTP server on localhost that records what webhooks post to it (for the alert tests)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Webhook:
    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200  # what the server answers; set 500 to play a broken receiver
    delay: float = 0.0  # seconds before answering; longer than the client's timeout plays a hung one

    def texts(self) -> list[str]:
        return [message["text"] for message in self.received]


@contextmanager
def webhook_server() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            hook.received.append(json.loads(body) | {"_content_type": self.headers["Content-Type"]})
            time.sleep(hook.delay)
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/modelyard"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
