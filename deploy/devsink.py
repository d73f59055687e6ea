#!/usr/bin/env python3
"""Development notification sink: stands in for the email / SMS / webhook
providers in `make up` and docker-compose. Logs every request as one JSON line
on stdout (make up sends it to var/log/sink.log) and answers 200.

"body" is the request body exactly as received, as a JSON string (UTF-8; a
body that is not UTF-8 is logged as "body_base64" instead), never parsed and
re-serialised: json.loads(line)["body"].encode() are the bytes notify signed,
so X-Signature can be checked from the log.

usage: devsink.py [--host 127.0.0.1] [--port 8099]   (env OF_SINK_PORT too)
"""

import argparse
import base64
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SHOWN_HEADERS = ("content-type", "idempotency-key", "x-signature", "traceparent", "user-agent")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "orderflow-devsink/1"

    def log_message(self, *args):
        pass

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.command == "GET" and self.path == "/ready":  # make up's readiness probe
            entry = None
        else:
            entry = {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() in SHOWN_HEADERS},
            }
            try:
                entry["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                entry["body_base64"] = base64.b64encode(body).decode("ascii")
        if entry is not None:
            sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
            sys.stdout.flush()
        data = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_GET = _handle


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=int(os.environ.get("OF_SINK_PORT", "8099")))
    args = ap.parse_args()
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sys.stdout.write(json.dumps({"devsink": f"listening on http://{args.host}:{args.port}"}) + "\n")
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()
