"""The quick start's demo target: answers every request with what it received.

`python3 echo.py [PORT] [HOST]` (default 8081 on 0.0.0.0; port 0 picks a free one).
The answer is JSON: method, path, query, the request headers (names in lower case)
and the body. authrelay redacts every secret it applied wherever it appears in a
response, so a job's result shows an echoed credential as "[REDACTED]".
It prints one line when it listens, and one per request without header values.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Echo(BaseHTTPRequestHandler):
    def answer(self):
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        echoed = {
            "method": self.command,
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        data = json.dumps(echoed, indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, format, *args):
        names = ", ".join(k.lower() for k in self.headers.keys())
        print(f"echo: {self.command} {urlsplit(self.path).path} (headers: {names})", flush=True)


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8081
    host = sys.argv[2] if len(sys.argv) > 2 else "0.0.0.0"
    server = ThreadingHTTPServer((host, port), Echo)
    print(f"echo: listening on {host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
