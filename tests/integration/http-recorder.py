#!/usr/bin/env python3
"""A plain HTTP server on 127.0.0.1 for notification tests.

Usage: http-recorder.py LOG PORTFILE

Binds a free port, writes it to PORTFILE (atomically), then appends one
line per request to LOG: "METHOD PATH BODY" (the body on one line). A
path containing "/err" gets HTTP 500, every other one 200.
"""
import http.server
import os
import sys

log_path, port_path = sys.argv[1], sys.argv[2]


class Recorder(http.server.BaseHTTPRequestHandler):
    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        body = " ".join(body.split())
        with open(log_path, "a", encoding="utf-8") as log:
            log.write(f"{self.command} {self.path} {body}\n")
        code = 500 if "/err" in self.path else 200
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = _record

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
with open(port_path + ".tmp", "w", encoding="ascii") as f:
    f.write(str(server.server_address[1]))
os.rename(port_path + ".tmp", port_path)
server.serve_forever()
