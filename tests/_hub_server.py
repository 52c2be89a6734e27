"""A local stand-in for the Hugging Face Hub's HTTP API: just what ``huggingface_hub`` calls to create a model
repo and a branch, commit files (``upload_folder``; every file is declared "regular", so its bytes travel inside
the commit instead of through LFS) and download a snapshot at a revision. Served on 127.0.0.1 from a thread;
point a client at it with ``HF_ENDPOINT``. Nothing here reaches the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """commit sha -> the full tree at that commit (path -> bytes)."""
    branches: dict[str, str] = field(default_factory=dict)
    """branch -> commit sha."""
    messages: dict[str, str] = field(default_factory=dict)
    """commit sha -> commit message."""

    def commit(self, branch: str, files: dict[str, bytes], message: str, deleted: list[str] = ()) -> str:
        parent = self.commits.get(self.branches.get(branch, ""), {})
        tree = {name: data for name, data in {**parent, **files}.items() if name not in deleted}
        sha = hashlib.sha1(json.dumps([branch, message, len(self.commits), sorted(tree)]).encode()).hexdigest()
        self.commits[sha], self.branches[branch], self.messages[sha] = tree, sha, message
        return sha

    def resolve(self, revision: str) -> str | None:
        return self.branches.get(revision) or (revision if revision in self.commits else None)


class MockHub:
    """``with MockHub(token="hf_test") as hub: ... hub.url ... hub.repos["user/name"]``."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []
        self.cards: list[dict] = []
        """The YAML metadata of every model card validated (``/api/validate-yaml``)."""
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MockHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        repo = self.repos[repo_id]
        return repo.commits[repo.resolve(revision)]


def _handler(hub: MockHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        # ------------------------------------------------------------------ plumbing
        def _send(
            self,
            status: int,
            body: bytes | dict | None = None,
            headers: dict[str, str] | None = None,
            head: bool = False,
        ) -> None:
            data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
            self.send_response(status)
            for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
                self.send_header(key, value)
            if isinstance(body, dict):
                self.send_header("Content-Type", "application/json")
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
            self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head=head)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _authorised(self) -> bool:
            if hub.token is None or self.headers.get("Authorization") == f"Bearer {hub.token}":
                return True
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return False

        def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", f"Repository {repo_id} not found", head=head)
            return repo

        # ------------------------------------------------------------------ routes
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"POST {path}")
            if not self._authorised():
                return
            if path == "/api/repos/create":
                payload = json.loads(self._body())
                repo_id = f"{payload['organization']}/{payload['name']}"
                if payload.get("type", "model") != "model":
                    return self._error(400, "BadRequest", "only model repos here")
                if repo_id in hub.repos:  # the Hub answers 409 with the repo's url (create_repo(exist_ok=True))
                    body = {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"}
                    return self._send(409, body, {"X-Error-Code": "Conflict"})
                hub.repos[repo_id] = Repo()
                hub.repos[repo_id].commit("main", {".gitattributes": b"*.safetensors filter=lfs\n"}, "initial commit")
                return self._send(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})
            if path == "/api/validate-yaml":  # the README.md metadata, checked before a commit
                return self._validate_card(json.loads(self._body())["content"])
            parts = path.split("/")  # /api/models/<org>/<name>/<action>/<revision>
            if len(parts) < 7 or parts[:3] != ["", "api", "models"]:
                return self._error(404, "NotFound", f"no route {path}")
            repo_id, action, revision = f"{parts[3]}/{parts[4]}", parts[5], "/".join(parts[6:])
            repo = self._repo(repo_id)
            if repo is None:
                return
            if action == "branch":
                if revision in repo.branches:
                    return self._error(409, "Conflict", f"Branch {revision} already exists")
                body = self._body()
                start = (json.loads(body) if body else {}).get("startingPoint") or "main"
                repo.branches[revision] = repo.resolve(start)
                return self._send(200, {})
            if action == "preupload":
                files = json.loads(self._body())["files"]
                modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                return self._send(200, {"files": modes, "commitOid": repo.branches.get(revision)})
            if action == "commit":
                if revision not in repo.branches:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                if "create_pr" in urlsplit(self.path).query:
                    return self._error(400, "BadRequest", "pull requests are not mocked")
                message, files, deleted = "", {}, []
                for line in self._body().splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        message = item["value"]["summary"]
                    elif item["key"] == "file":
                        assert item["value"]["encoding"] == "base64"
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        deleted.append(item["value"]["path"])
                    else:
                        return self._error(400, "BadRequest", f"operation {item['key']} is not mocked")
                sha = repo.commit(revision, files, message, deleted)
                return self._send(
                    200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": None}
                )
            self._error(404, "NotFound", f"no route {path}")

        def _validate_card(self, content: str) -> None:
            head, sep, _ = content.removeprefix("---\n").partition("\n---\n")
            try:
                metadata = yaml.safe_load(head) if content.startswith("---\n") and sep else None
            except yaml.YAMLError as err:
                metadata = str(err)
            if not isinstance(metadata, dict):
                return self._send(
                    400,
                    {"errors": [{"message": f"no YAML metadata mapping: {metadata!r}"}]},
                    {"X-Error-Code": "BadRequest"},
                )
            hub.cards.append(metadata)
            self._send(200, {"errors": [], "warnings": []})

        def do_GET(self) -> None:  # noqa: N802
            self._get(head=False)

        def do_HEAD(self) -> None:  # noqa: N802
            self._get(head=True)

        def _get(self, head: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{'HEAD' if head else 'GET'} {path}")
            parts = path.split("/")
            if parts[:3] == ["", "api", "models"] and len(parts) >= 7 and parts[5] == "revision":
                repo_id, revision = f"{parts[3]}/{parts[4]}", "/".join(parts[6:])
                repo = self._repo(repo_id, head)
                if repo is None:
                    return
                sha = repo.resolve(revision)
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head=head)
                siblings = [{"rfilename": name} for name in sorted(repo.commits[sha])]
                return self._send(
                    200,
                    {
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": sha,
                        "siblings": siblings,
                        "private": False,
                        "tags": [],
                        "downloads": 0,
                        "likes": 0,
                    },
                    head=head,
                )
            if parts[:3] == ["", "api", "models"] and len(parts) >= 7 and parts[5] == "tree":  # recursive listing
                repo = self._repo(f"{parts[3]}/{parts[4]}", head)
                sha = repo and repo.resolve(parts[6])
                if repo is None or sha is None:
                    return None if repo is None else self._error(404, "RevisionNotFound", "Invalid rev id", head=head)
                tree = repo.commits[sha]
                folders = sorted({name.rsplit("/", 1)[0] for name in tree if "/" in name})
                entries = [{"type": "directory", "path": f, "oid": _blob_id(f.encode())} for f in folders]
                entries += [
                    {"type": "file", "path": name, "size": len(data), "oid": _blob_id(data)}
                    for name, data in sorted(tree.items())
                ]
                return self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head=head)
            if len(parts) >= 6 and parts[3] == "resolve":  # /<org>/<name>/resolve/<revision>/<path>
                repo = self._repo(f"{parts[1]}/{parts[2]}", head)
                if repo is None:
                    return
                sha = repo.resolve(parts[4])
                if sha is None:
                    return self._error(404, "RevisionNotFound", f"Invalid rev id: {parts[4]}", head=head)
                name = "/".join(parts[5:])
                if name not in repo.commits[sha]:
                    return self._error(404, "EntryNotFound", f"{name} does not exist", head=head)
                data = repo.commits[sha][name]
                return self._send(200, data, {"X-Repo-Commit": sha, "ETag": f'"{_blob_id(data)}"'}, head=head)
            self._error(404, "NotFound", f"no route {path}", head=head)

    return Handler


def _blob_id(data: bytes) -> str:
    """The git blob id the Hub reports as a regular file's oid and ETag."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
