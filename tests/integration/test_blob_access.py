"""Photo downloads at the hub are cut to the reader's jurisdiction, and every one is audited."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from contracts.blobs import BLOB_COMPLETE
from hub.api.blobs import box_token
from runtime.config import local_secret
from tests.integration.test_presence import online_with
from tests.support.broker import Mosquitto
from tests.support.procs import (
    Hub,
    XfvProcess,
    http_json,
    register_with_photo,
    start_edge,
    wait_until,
)

TOWNSHIP = "510104021"
"""春熙路街道, in 锦江区 (county 510104)."""


def download(url: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of one GET; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def audit_rows(hub: Hub, action: str) -> list[tuple[str, str, dict[str, Any]]]:
    with sqlite3.connect(hub.dir / "state" / "hub.db") as db:
        rows = db.execute(
            "SELECT actor, target, detail FROM audit WHERE action = ? ORDER BY id", [action]
        ).fetchall()
    return [(actor, target, json.loads(detail)) for actor, target, detail in rows]


def test_a_photo_is_read_only_within_the_jurisdiction_of_its_case(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    admin = hub.login()
    hub.add_user("jinjiang", "official", "510104", "jinjiang-pass")
    hub.add_user("qingyang", "official", "510105", "qingyang-pass")
    processes.append(start_edge(tmp_path / "box", "box-h", TOWNSHIP, mosquitto))
    edge = wait_until("box-h online", lambda: online_with(hub, admin, "box-h"))
    kiosk = f"http://127.0.0.1:{edge['kiosk_port']}"
    case_no, sha = register_with_photo(kiosk, hub, admin, 9)
    url = f"{hub.base}/api/v1/blobs/{sha}"
    jinjiang = hub.login("jinjiang", "jinjiang-pass")
    qingyang = hub.login("qingyang", "qingyang-pass")

    status, body, headers = download(url, jinjiang)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == sha and body[:2] == b"\xff\xd8"
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Cache-Control"] == "private, no-store"
    assert audit_rows(hub, "pii.read") == [("jinjiang", case_no, {"field": "photo", "sha256": sha})]

    # Another county: the case API refuses the case (403, audited); the blob route answers
    # 404 like an unknown blob, so a photo's hash reveals nothing.
    assert http_json(f"{hub.base}/api/v1/cases/{case_no}", qingyang)[0] == 403
    status, body, _ = download(url, qingyang)
    assert status == 404 and json.loads(body) == {"error": f"no photo {sha} in your jurisdiction"}
    unknown = hashlib.sha256(b"no such photo").hexdigest()
    status, body, _ = download(f"{hub.base}/api/v1/blobs/{unknown}", qingyang)
    assert status == 404 and json.loads(body) == {
        "error": f"no photo {unknown} in your jurisdiction"
    }
    assert [(a, t) for a, t, _ in audit_rows(hub, "blob.denied")] == [("qingyang", sha)]
    assert len(audit_rows(hub, "pii.read")) == 1, "a refused read was audited as a read"

    # No token, a forged one, or a case API token of nobody: 401; nothing audited.
    for token in (None, "forged"):
        status, body, _ = download(url, token)
        assert status == 401 and "authorization" in json.loads(body)["error"]
    assert len(audit_rows(hub, "pii.read")) == 1

    # The box's own blob token still asks after its upload, but reads nothing.
    box = box_token(local_secret(hub.dir / "state" / "hub.key").encode(), "box-h", TOWNSHIP)
    req = urllib.request.Request(url, method="HEAD", headers={"Authorization": f"Bearer {box}"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and resp.headers[BLOB_COMPLETE] == "true"
    assert download(url, box)[0] == 401
    assert len(audit_rows(hub, "pii.read")) == 1

    # The province's admin covers the county too; each read is one more audit row.
    status, body, _ = download(url, admin)
    assert status == 200 and hashlib.sha256(body).hexdigest() == sha
    assert [(a, t) for a, t, _ in audit_rows(hub, "pii.read")] == [
        ("jinjiang", case_no),
        ("admin", case_no),
    ]
