"""A real HTTP receiver for webhook tests: a local server on 127.0.0.1 that records what it is sent."""

import json
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: Message
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """A local HTTP server that records each POST and answers the next of `answers` (then `default`): a status
    code, `"hang"` (never answers until the test ends) or `"redirect"`."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: list[int | str] = []
        self.default: int | str = 200
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Received(self.path, self.headers, body))
                answer = receiver.answers.pop(0) if receiver.answers else receiver.default
                if answer == "hang":
                    receiver.release.wait(30)
                    return
                if answer == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://169.254.169.254/")
                else:
                    self.send_response(int(answer))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
