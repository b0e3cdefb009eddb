"""A real HTTP receiver on 127.0.0.1 in a thread, for webhook tests."""

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    fail_first: int = 0  # answer 500 to this many requests before accepting
    fail_event: str = ""  # when set, only requests for this event count and fail
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append(Received(dict(self.headers.items()), body))
                counted = receiver.fail_event in ("", self.headers["X-Breakglass-Event"])
                failing = (
                    counted and receiver.event_count(receiver.fail_event) <= receiver.fail_first
                )
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def event_count(self, event: str = "") -> int:
        """Requests received for `event` (all of them when empty)."""
        return sum(
            1 for r in self.received if not event or r.headers["X-Breakglass-Event"] == event
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
