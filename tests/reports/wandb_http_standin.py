"""A stand-in for the W&B server at the HTTP boundary, for the ``--wandb ENTITY/PROJECT`` test.

The real ``wandb.Api`` (and its wandb-core service) talks to this local GraphQL endpoint exactly
as it would to api.wandb.ai: it authenticates (``Viewer``, ``GetDefaultEntity``), lists a
project's runs (``Runs``, the full run fragment) and reads each run's history
(``RunFullHistory``). The runs served are what ``wandb sync`` would have uploaded from offline runs
of the harness: their config, summary, history, state, git commit and start time. Nothing in
``wandb`` or ``reports`` is patched; only the server is not the real one.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from reports.wandb_offline import OfflineRun


def _node(run: OfflineRun, index: int) -> dict:
    return {
        "projectId": "1",
        "id": f"gid-{index}",
        "name": run.run_id,
        "displayName": run.name,
        "tags": run.tags,
        "sweepName": None,
        "state": {0: "finished", None: "running"}.get(run.exit_code, "failed"),
        # The server stores config entries as {"value": ...}, and JSON-encodes both maps.
        "config": json.dumps({k: {"value": v, "desc": None} for k, v in run.config.items()}),
        "group": run.group,
        "jobType": None,
        "commit": run.commit,
        "readOnly": False,
        "createdAt": run.started_at.replace("+00:00", ""),
        "heartbeatAt": run.started_at.replace("+00:00", ""),
        "description": None,
        "notes": None,
        "systemMetrics": "{}",
        "summaryMetrics": json.dumps(run.summary),
        "historyLineCount": len(run.history),
        "user": {"name": "tester", "username": "tester"},
        "historyKeys": None,
    }


@contextmanager
def wandb_server(entity: str, project: str, runs: list[OfflineRun]) -> Iterator[str]:
    """Serve ``runs`` as ``entity/project``; yields the base URL for ``wandb.Api``."""
    by_name = {run.run_id: run for run in runs}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, data: dict | None, status: int = 200) -> None:
            body = json.dumps({"data": data}).encode() if data is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply(None, 404)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.startswith("/graphql"):  # telemetry and the like
                self._reply(None, 200)
                return
            request = json.loads(body)
            match = re.search(r"(?:query|mutation)\s+(\w+)", request["query"])
            operation = request.get("operationName") or (match.group(1) if match else "")
            variables = request.get("variables") or {}
            if operation == "Viewer":
                user = {"id": "u1", "entity": entity, "username": "tester", "email": "",
                        "flags": "{}", "teams": {"edges": []}}  # fmt: skip
                self._reply({"viewer": user})
            elif operation == "GetDefaultEntity":
                self._reply({"viewer": {"id": "u1", "entity": entity}})
            elif operation == "Runs":
                if (variables.get("entity"), variables.get("project")) != (entity, project):
                    self._reply({"project": None})
                    return
                edges = [{"node": _node(r, i), "cursor": f"c{i}"} for i, r in enumerate(runs)]
                page = {"endCursor": f"c{len(runs) - 1}", "hasNextPage": False}
                self._reply(
                    {"project": {"internalId": "1", "runCount": len(runs), "readOnly": False,
                                 "runs": {"edges": edges, "pageInfo": page}}}
                )  # fmt: skip
            elif operation == "RunFullHistory":
                run = by_name[variables["name"]]
                lines = [json.dumps(row) for row in run.history]
                self._reply({"project": {"run": {"history": lines}}})
            else:
                self._reply(None, 400)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
