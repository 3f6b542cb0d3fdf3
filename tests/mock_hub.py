#!/usr/bin/env python3
"""mock_hub.py — a small stand-in for the Hugging Face Hub on loopback, for
tests/cli_pull.sh (no network in the tests). Python 3 standard library only.

It answers what `nexus pull` (and huggingface_hub's snapshot_download) ask:

  GET  /api/{models|datasets}/{org}/{name}/revision/{rev}   {"sha", "siblings": [{"rfilename"}]}
  GET  /api/{models|datasets}/{org}/{name}/tree/{rev}[/{dir}]?recursive=true
       [{"type": "file"|"directory", "path", "oid", "size"[, "lfs": {"oid", "size", "pointerSize"}]}]
       (huggingface_hub >= 1.0 lists a snapshot this way; one page, no Link header)
  HEAD/GET /{org}/{name}/resolve/{rev}/{path}                (datasets: /datasets/{org}/{name}/...)
       a regular file: 200 with ETag = its git blob sha1 and the bytes;
       an LFS file (*.safetensors): 302 to /cdn/{repo}/{sha256} with X-Linked-Etag = sha256
       and X-Linked-Size, as the Hub redirects to its CDN
  GET  /cdn/{repo}/{sha256}                                  the bytes, with Range support (206)

Every repo holds the same files (tests/fixtures/tiny-llama plus a README.md
and a nested extra/notes.txt); the repo name picks a misbehaviour of the
CDN or of access control:

  nexus-test/tiny-llama    behaves
  nexus-test/flaky         the first GET of the LFS blob drops the connection halfway
  nexus-test/norange       the same, and then ignores Range (answers 200 with every byte)
  nexus-test/slow          the first GET of the LFS blob sends 1 KiB, then trickles (for a Ctrl-C)
  nexus-test/corrupt-once  the first GET of the LFS blob serves one wrong byte
  nexus-test/corrupt       every GET of the LFS blob serves one wrong byte
  nexus-test/expired       the first GET of the LFS blob is a 403 (an expired signed CDN URL);
                           its CDN is http://localhost:PORT
  nexus-test/private       401 without "Authorization: Bearer hf_test_token"; its CDN is
                           http://localhost:PORT (another origin than 127.0.0.1)
  nexus-test/gated         the API answers; a file is 401 GatedRepo without a token, 403 with one
  dataset nexus-test/tiny-data   data.jsonl and val/val.txt

Other repos: 401 RepoNotFound without a token, 404 with one (as the Hub).
Revisions: "main" and the commit sha; others 404 RevisionNotFound.
One line per request goes to --log: "METHOD PATH range=R auth=A".
The port (bound on 127.0.0.1, chosen by the OS) is written to --port-file.
--print-facts prints the commit shas and git blob shas the test checks.
"""
import argparse
import hashlib
import json
import os
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hf_test_token"
MODEL_REPOS = ["tiny-llama", "flaky", "norange", "slow", "corrupt-once", "corrupt", "expired", "private", "gated"]


def git_blob_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def commit_of(repo):
    return hashlib.sha1(("commit " + repo).encode()).hexdigest()


class Hub:
    def __init__(self, fixtures, log):
        tl = os.path.join(fixtures, "tiny-llama")
        model = {
            "config.json": open(os.path.join(tl, "config.json"), "rb").read(),
            "model.safetensors": open(os.path.join(tl, "model.safetensors"), "rb").read(),
            "README.md": b"# tiny-llama\n\nA 5,712-parameter Llama for the tests of nexus.\n",
            "extra/notes.txt": b"a nested file\n",
        }
        data = {
            "data.jsonl": b'{"text": "hello world"}\n{"text": "the cat sat"}\n',
            "val/val.txt": b"validation text\n",
        }
        self.repos = {("models", "nexus-test/" + r): model for r in MODEL_REPOS}
        self.repos[("datasets", "nexus-test/tiny-data")] = data
        self.blobs = {}  # sha256 -> bytes
        for files in self.repos.values():
            for path, b in files.items():
                self.blobs[hashlib.sha256(b).hexdigest()] = b
        self.counts = {}
        self.lock = threading.Lock()
        self.log = open(log, "a", buffering=1)

    def count(self, key):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            return self.counts[key]


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up (Ctrl-C in the test) is expected


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (40 ms a request)
    server_version = "mock-hub/1"

    def log_message(self, fmt, *args):
        pass

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def reply(self, status, headers=(), body=b"", head=False):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def error(self, status, code, msg, head):
        body = json.dumps({"error": msg}).encode()
        self.reply(status, [("X-Error-Code", code), ("X-Error-Message", msg),
                            ("Content-Type", "application/json")], body, head)

    def authorized(self):
        return self.headers.get("Authorization") == "Bearer " + TOKEN

    def handle_any(self, head):
        hub = self.server.hub
        hub.log.write("%s %s range=%s auth=%s\n" % (self.command, self.path, self.headers.get("Range", "-"),
                                                 self.headers.get("Authorization", "-")))
        path = urllib.parse.urlsplit(self.path).path
        parts = [urllib.parse.unquote(p) for p in path.split("/")[1:]]
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] == "revision":
            return self.api(parts[1], parts[2] + "/" + parts[3], "/".join(parts[5:]), head)
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[4] == "tree":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            return self.tree(parts[1], parts[2] + "/" + parts[3], parts[5], "/".join(parts[6:]),
                             query.get("recursive", ["false"])[0] == "true", head)
        if parts[:1] == ["cdn"] and len(parts) == 4:
            return self.cdn(parts[1] + "/" + parts[2], parts[3], head)
        kind = "models"
        if parts[:1] == ["datasets"]:
            kind, parts = "datasets", parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(kind, parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]), head)
        self.error(404, "EntryNotFound", "no such route", head)

    def find(self, kind, repo, rev, head):
        """The repo's files, or None after answering an error."""
        files = self.server.hub.repos.get((kind, repo))
        if files is None:
            if self.authorized():
                self.error(404, "RepoNotFound", "Repository not found", head)
            else:
                self.error(401, "RepoNotFound", "Repository not found", head)
            return None
        if repo == "nexus-test/private" and not self.authorized():
            self.error(401, "RepoNotFound", "Repository not found", head)
            return None
        if rev not in ("main", commit_of(repo)):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + rev, head)
            return None
        return files

    def api(self, kind, repo, rev, head):
        files = self.find(kind, repo, rev, head)
        if files is None:
            return
        body = json.dumps({"id": repo, "sha": commit_of(repo), "private": repo.endswith("private"),
                           "siblings": [{"rfilename": p} for p in sorted(files)]}).encode()
        self.reply(200, [("Content-Type", "application/json")], body, head)

    def tree(self, kind, repo, rev, under, recursive, head):
        files = self.find(kind, repo, rev, head)
        if files is None:
            return
        prefix = under.strip("/") + "/" if under.strip("/") else ""
        entries, dirs = [], set()
        for path in sorted(files):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            for i in range(1, len(rest)):  # the folders on the way
                d = prefix + "/".join(rest[:i])
                if d not in dirs and (recursive or i == 1):
                    dirs.add(d)
                    entries.append({"type": "directory", "path": d, "oid": git_blob_sha1(d.encode()), "size": 0})
            if len(rest) > 1 and not recursive:
                continue
            data = files[path]
            e = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
            if path.endswith(".safetensors"):
                e["oid"] = git_blob_sha1(b"pointer " + data[:16])
                e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(e)
        self.reply(200, [("Content-Type", "application/json")], json.dumps(entries).encode(), head)

    def resolve(self, kind, repo, rev, path, head):
        files = self.find(kind, repo, rev, head)
        if files is None:
            return
        if repo == "nexus-test/gated":
            if self.authorized():
                self.error(403, "GatedRepo", "Access to model nexus-test/gated is restricted and you are not "
                           "in the authorized list.", head)
            else:
                self.error(401, "GatedRepo", "Access to model nexus-test/gated is restricted.", head)
            return
        if path not in files:
            self.error(404, "EntryNotFound", "Entry not found", head)
            return
        data = files[path]
        common = [("X-Repo-Commit", commit_of(repo))]
        if path.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            host = "localhost" if repo in ("nexus-test/private", "nexus-test/expired") else "127.0.0.1"
            loc = "http://%s:%d/cdn/%s/%s" % (host, self.server.server_address[1], repo, sha)
            self.reply(302, common + [("Location", loc), ("X-Linked-Etag", '"%s"' % sha),
                                      ("X-Linked-Size", str(len(data))),
                                      ("ETag", '"%s"' % git_blob_sha1(b"pointer " + data[:16]))],
                       b"Found. Redirecting", head)
            return
        self.reply(200, common + [("ETag", '"%s"' % git_blob_sha1(data))], data, head)

    def cdn(self, repo, sha, head):
        hub = self.server.hub
        data = hub.blobs.get(sha)
        if data is None:
            self.reply(404, [], b"NoSuchKey", head)
            return
        n = 0 if head else hub.count((repo, sha))
        name = repo.split("/")[1]
        if name == "expired" and n == 1:
            self.reply(403, [("Content-Type", "application/xml")], b"<?xml version=\"1.0\"?>\n<Error><Code>"
                       b"AccessDenied</Code><Message>Request has expired</Message></Error>", head)
            return
        if name == "corrupt" or (name == "corrupt-once" and n == 1):
            data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
        start = 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and rng.endswith("-") and not (name == "norange" and n > 1):
            start = int(rng[6:-1])
            if start >= len(data):
                self.reply(416, [("Content-Range", "bytes */%d" % len(data))], b"", head)
                return
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"%s"' % sha)
        self.end_headers()
        if head:
            return
        if name in ("flaky", "norange") and n == 1:  # drop the connection halfway through
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if name == "slow" and n == 1:  # 1 KiB, then a trickle until the test's Ctrl-C hangs up
            self.wfile.write(body[:1024])
            self.wfile.flush()
            for i in range(1024, len(body), 16):
                time.sleep(0.05)
                self.wfile.write(body[i:i + 16])
                self.wfile.flush()
            return
        self.wfile.write(body)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
    ap.add_argument("--port-file")
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--print-facts", action="store_true",
                    help="print, as shell assignments, what the test compares against, and exit")
    a = ap.parse_args()
    if a.print_facts:  # one python start for the test, not one per value
        hub = Hub(a.fixtures, os.devnull)
        for (kind, repo), files in sorted(hub.repos.items()):
            print("COMMIT_%s=%s" % (repo.split("/")[1].replace("-", "_"), commit_of(repo)))
        for path, b in sorted(hub.repos[("models", "nexus-test/tiny-llama")].items()):
            print("GITSHA_%s=%s" % (path.replace("/", "_").replace(".", "_"), git_blob_sha1(b)))
        return
    if not a.port_file:
        ap.error("--port-file is required")
    srv = Server(("127.0.0.1", 0), Handler)
    srv.hub = Hub(a.fixtures, a.log)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
