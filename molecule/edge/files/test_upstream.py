#!/usr/bin/env python3
"""Test upstream for the edge scenario -- NOT Loki, Prometheus or Grafana.

Listens on the backends' loopback ports (and on two all-interface ports the
firewall must hide), answers like a generic backend and records every request
(port, method, path, headers, and a push's body, gunzipped) as one JSON line,
so the verify step can check what nginx forwarded: the verified store and
tenant headers, no Authorization header, no admin API path, no stream that
claims another store.

  POST .../push             -> 204 (like a push endpoint)
  .../slow?s=N               -> 200 after N seconds (an in-flight request)
  Upgrade: websocket         -> 101 handshake, then close
  anything else              -> 200 with a small JSON body

A listener given as record:HOST:PORT serves only GET /received: the record
itself (one JSON line per request), for a client test that checks what
arrived where no Loki runs.
"""
import base64
import gzip
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG = sys.argv[1]
LISTEN = [(a.startswith("record:"), *a.removeprefix("record:").rsplit(":", 1)) for a in sys.argv[2:]]
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "obs-test-upstream"

    def log_message(self, *args):
        pass

    def _record(self, body):
        entry = {"port": self.server.server_address[1], "method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body_length": len(body)}
        if self.path.endswith("/push") and body:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            entry["body"] = body[:65536].decode("utf-8", "replace")
        with lock, open(LOG, "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def _handle(self):
        if self.server.serves_record:
            with lock:
                data = open(LOG, "rb").read() if os.path.exists(LOG) else b""
            self.send_response(200 if self.path == "/received" else 404)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        length = int(self.headers.get("Content-Length") or 0)
        self._record(self.rfile.read(length) if length else b"")
        url = urlsplit(self.path)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers.get("Sec-WebSocket-Key", "")
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept)
            self.end_headers()
            self.close_connection = True
            return
        if self.command == "POST" and url.path.endswith("/push"):
            self.send_response(204)
            self.end_headers()
            return
        if url.path.endswith("/slow"):
            time.sleep(float(parse_qs(url.query).get("s", ["2"])[0]))
        body = json.dumps({"test_upstream": self.server.server_address[1], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


servers = []
for record, host, port in LISTEN:
    server = Server((host, int(port)), Handler)
    server.serves_record = record
    servers.append(server)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
