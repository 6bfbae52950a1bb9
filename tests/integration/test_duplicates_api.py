"""Likely duplicates and merging (并案) through the real hub process: suggestions cut to the
caller's jurisdiction with ID numbers masked, the cross-county 403 (audited), merging refused
for a unit and allowed for the petition office, and the original's deadlines kept."""

from __future__ import annotations

import datetime as dt
import json

from hub.pii import PiiVault
from hub.store.migrations import migrations
from runtime.sqlite import open_database
from tests.integration.test_blob_access import audit_rows
from tests.support.procs import Hub, http_json, wait_until
from tests.workflow.test_duplicates import BUILDING_AGAIN, QINGYANG, ZHANG, add


def seed(hub: Hub) -> None:
    """Three cases of one petitioner: the original, a repeat of it, and one in another county."""
    key = hub.pii_key()
    vault, now = PiiVault(key), dt.datetime.now(dt.UTC)
    db = open_database(hub.database, migrations)
    try:
        add(db, "ORIGINAL", days=-3, start=now, vault=vault)
        add(db, "REPEAT", content=BUILDING_AGAIN, days=-1, start=now, vault=vault)
        add(db, "ELSEWHERE", township=QINGYANG, days=-2, start=now, vault=vault)
    finally:
        db.close()


def test_suggestions_and_merge_over_the_api(workflow_hub: Hub) -> None:
    hub = workflow_hub
    seed(hub)
    office = hub.login("office", "office-password")
    handler = hub.login("handler", "handler-password")
    qy = hub.login("qy", "qy-password")
    wait_until(
        "cases adopted with deadlines",
        lambda: hub.query("SELECT count(*) FROM deadlines WHERE case_no = 'ORIGINAL'")[0][0] > 0,
    )
    url = f"{hub.base}/api/v1/cases/REPEAT"

    status, body = http_json(url + "/duplicates", office)
    assert status == 200, body
    [suggestion] = body["suggestions"]  # ELSEWHERE is outside the office's county
    assert suggestion["case_no"] == "ORIGINAL"
    assert suggestion["township"] == "510104021" and suggestion["state"] == "registered"
    assert [r["code"] for r in suggestion["reasons"]] == [
        "same_petitioner",
        "same_unit",
        "similar_text",
    ]
    assert [r["label_zh"] for r in suggestion["reasons"]] == [
        "同一信访人",
        "同一被反映单位",
        "诉求内容相似",
    ]
    assert 0.9 < suggestion["score"] <= 1
    assert "*" in suggestion["id_masked"]
    assert ZHANG not in json.dumps(body) and ZHANG[6:14] not in json.dumps(body)

    # Another county: refused and audited, for the list and for a merge.
    status, body = http_json(url + "/duplicates", qy)
    assert status == 403 and "outside your jurisdiction" in body["error"]
    status, _ = http_json(url + "/merge", qy, body={"into": "ORIGINAL"})
    assert status == 403
    assert [(a, t) for a, t, _ in audit_rows(hub, "case.denied")] == [
        ("qy", "REPEAT"),
        ("qy", "REPEAT"),
    ]
    assert http_json(f"{hub.base}/api/v1/cases/NOPE/duplicates", office)[0] == 404
    assert http_json(url + "/duplicates?limit=0", office)[0] == 400

    # Merging: not for a unit (which does not even see a case not routed to it), not into
    # itself or a case outside the jurisdiction.
    status, body = http_json(url + "/merge", handler, body={"into": "ORIGINAL"})
    assert status == 403 and "outside your jurisdiction or role" in body["error"], body
    status, body = http_json(url + "/merge", office, body={"into": "REPEAT"})
    assert status == 422 and body["field"] == "into", body
    status, body = http_json(url + "/merge", office, body={"into": "ELSEWHERE"})
    assert status == 403, body
    status, body = http_json(url + "/merge", office, body={"note": "no into"})
    assert status == 422 and body["field"] == "into", body
    assert hub.query("SELECT state FROM cases WHERE case_no = 'REPEAT'") == [("registered",)]

    deadlines = "SELECT * FROM deadlines WHERE case_no = 'ORIGINAL' ORDER BY id"
    before = hub.query(deadlines)
    status, body = http_json(url + "/merge", office, body={"into": "ORIGINAL", "note": "重复件"})
    assert status == 200, body
    assert body["state"] == "merged" and body["merged_into"] == "ORIGINAL"
    assert hub.query("SELECT state, merged_into FROM cases WHERE case_no = 'REPEAT'") == [
        ("merged", "ORIGINAL")
    ]
    assert set(hub.query("SELECT case_no, other FROM case_links WHERE kind = 'merged'")) == {
        ("REPEAT", "ORIGINAL"),
        ("ORIGINAL", "REPEAT"),
    }
    assert hub.query(deadlines) == before
    assert hub.query("SELECT actor, action FROM transitions WHERE case_no = 'REPEAT'") == [
        ("office", "merge")
    ]
    status, body = http_json(f"{hub.base}/api/v1/cases/ORIGINAL/duplicates", office)
    assert status == 200 and body["suggestions"] == []
