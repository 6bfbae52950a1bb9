"""The petitioner's query page on a real hub process, in a real headless Chromium."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, ViewportSize, expect
from sqlite_utils import Database

from hub.api import query as query_api
from hub.store.migrations import migrations
from hub.workflow import query
from runtime.sqlite import open_database
from tests.support.broker import Mosquitto, free_port
from tests.support.procs import Hub, http_json
from tests.workflow.test_query import CODE, UNIT_ID, UNIT_NAME, add_cases, reply, rules

WRONG = "31415926"
REFUSED = "案件编号或查询码不对，请对照回执再试一次。"
PHONE: ViewportSize = {"width": 390, "height": 844}
"""A phone's screen: the page is for petitioners on their own phones."""


def hub_db(hub: Hub) -> Database:
    """A second connection to the running hub's database (WAL: the hub keeps serving)."""
    path = hub.dir / "state" / "hub.db"
    assert path.exists()
    return open_database(path, migrations)


def post(
    url: str, body: dict[str, Any], forwarded_for: str | None = None
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, JSON body) of one POST (through a reverse proxy that says the client
    is ``forwarded_for``); HTTP errors are returned, not raised."""
    headers = {"Content-Type": "application/json"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def ask(page: Page, case_no: str, code: str) -> None:
    page.fill("#case_no", case_no)
    page.fill("#code", code)
    page.click("#look")


def rated_cases(hub: Hub) -> tuple[str, str]:
    """Two cases with query code ``CODE`` written into the running hub: one answered (by the
    unit's handler ``unit-li``), one just registered."""
    db = hub_db(hub)
    try:
        replied, waiting = add_cases(db, 2)
        reply(db, rules(), replied)
    finally:
        db.close()
    return replied, waiting


def test_the_page_refuses_a_wrong_code_shows_the_timeline_and_takes_one_rating(
    browser: Browser, hub: Hub
) -> None:
    replied, _ = rated_cases(hub)
    page = browser.new_page(viewport=PHONE)
    page.goto(hub.base + "/query")  # no login
    expect(page.locator("h1")).to_have_text("信访事项查询")
    ask(page, replied, WRONG)
    expect(page.locator("#message")).to_have_text(REFUSED)
    expect(page.locator("#result")).to_be_hidden()
    page.evaluate("document.getElementById('message').textContent = ''")
    ask(page, "510104021-NO-SUCH-CASE", CODE)  # an unknown case: the very same answer
    expect(page.locator("#message")).to_have_text(REFUSED)

    ask(page, replied, CODE)
    expect(page.locator("#message")).to_be_hidden()
    expect(page.locator("#state")).to_have_text("目前状态：已答复，请评价")
    steps = page.locator("#timeline li")
    expect(steps).to_have_count(5)
    expect(steps.nth(0)).to_contain_text("您的信访事项已登记")
    expect(page.locator('#timeline li[data-kind="route"]')).to_contain_text(
        f"已转交{UNIT_NAME}办理"
    )
    expect(steps.nth(4)).to_contain_text("已答复，请评价")
    expect(page.locator("#timeline")).not_to_contain_text("unit-li")
    expect(page.locator("#send")).to_be_disabled()
    page.click('fieldset[data-question="office"] button[data-value="satisfied"]')
    unhappy = page.locator('fieldset[data-question="unit"] button[data-value="dissatisfied"]')
    unhappy.click()
    expect(unhappy).to_have_attribute("aria-pressed", "true")
    page.fill("#comment", "问题没有解决")
    page.click("#send")
    expect(page.locator("#thanks")).to_contain_text("已转给有关部门")
    expect(page.locator("#thanks")).to_contain_text("信访部门「满意」，责任单位「不满意」")
    expect(page.locator("#rating")).to_be_hidden()
    expect(page.locator("#state")).to_have_text("目前状态：已答复，您已评价")
    expect(steps.last).to_contain_text("您已评价，谢谢")

    db = hub_db(hub)
    try:
        follow = next(db.query("SELECT * FROM followups WHERE case_no = ?", [replied]))
        assert follow["kind"] == "dissatisfied" and "问题没有解决" in follow["reason"]
        note = next(db.query("SELECT * FROM notifications WHERE kind = 'dissatisfied'"))
        assert (note["case_no"], note["recipient"]) == (replied, "unit-li")
        rating = next(db.query("SELECT * FROM ratings WHERE case_no = ?", [replied]))
        assert (rating["office"], rating["unit"]) == ("satisfied", "dissatisfied")
    finally:
        db.close()

    english = browser.new_page(viewport=PHONE)
    english.goto(hub.base + "/query?lang=en")
    expect(english.locator("h1")).to_have_text("Check your petition")
    ask(english, replied, CODE)
    expect(english.locator("#state")).to_have_text("Now: Answered and rated")
    expect(english.locator("#rating")).to_be_hidden()
    expect(english.locator("#thanks")).to_contain_text('responsible unit "Not satisfied"')
    assert hub.process is not None and CODE not in hub.process.log()


def test_the_rating_api_takes_one_rating_after_a_reply_and_tells_the_handler(hub: Hub) -> None:
    replied, waiting = rated_cases(hub)
    rate_url = hub.base + "/api/v1/public/rate"
    early = {"case_no": waiting, "code": CODE, "office": "satisfied", "unit": "satisfied"}
    status, body = http_json(rate_url, body=early)
    assert (status, body["reason"]) == (409, "not_replied")
    status, body = http_json(rate_url, body={**early, "unit": "meh"})
    assert status == 422 and body["field"] == "unit"
    status, body = http_json(rate_url, body={**early, "code": WRONG})
    assert status == 404 and body["error"] == query_api.NOT_FOUND

    rating = {**early, "case_no": replied, "office": "dissatisfied", "comment": "态度不好"}
    status, body = http_json(rate_url, body=rating)
    assert status == 201 and body["rating"]["followup"] is True and body["can_rate"] is False
    status, body = http_json(rate_url, body={**rating, "office": "satisfied"})
    assert (status, body["reason"]) == (409, "already_rated")

    # the handler sees the follow-up in the console inbox
    hub.add_user("unit-li", "unit", "510104", "unit-password", unit=UNIT_ID)
    status, inbox = http_json(hub.base + "/api/v1/inbox", hub.login("unit-li", "unit-password"))
    assert status == 200
    unhappy = [n for n in inbox["notifications"] if n["kind"] == "dissatisfied"]
    assert [n["case_no"] for n in unhappy] == [replied] and "信访部门" in unhappy[0]["text"]


def test_wrong_codes_are_limited_per_case_and_per_address_across_a_restart(
    browser: Browser, hub: Hub
) -> None:
    db = hub_db(hub)
    try:
        guessed, other = add_cases(db, 2)
    finally:
        db.close()
    page = browser.new_page(viewport=PHONE)
    page.goto(hub.base + "/query")
    for n in range(query.CASE_LIMIT):
        ask(page, guessed, f"{WRONG[:-1]}{n}")
        expect(page.locator("#message")).to_have_text("案件编号或查询码不对，请对照回执再试一次。")
        # clear it, so that the next expectation waits for the next answer
        page.evaluate("document.getElementById('message').textContent = ''")
    ask(page, guessed, CODE)  # now even the right code is refused
    expect(page.locator("#message")).to_have_text("输错次数太多，请 15 分钟后再查询。")
    expect(page.locator("#result")).to_be_hidden()

    body = {"case_no": guessed, "code": CODE}
    status, headers, answer = post(hub.base + "/api/v1/public/query", body)
    assert status == 429
    assert 14 * 60 < int(headers["Retry-After"]) <= 15 * 60
    assert answer["retry_after"] == int(headers["Retry-After"])
    status, _, answer = post(hub.base + "/api/v1/public/query", {**body, "case_no": other})
    assert status == 200 and answer["state"] == "registered" and answer["can_rate"] is False

    # 15 more wrong codes from this address, spread so that no case reaches its own limit
    for n in range(query.CLIENT_LIMIT - query.CASE_LIMIT):
        status, _, _ = post(
            hub.base + "/api/v1/public/query", {"case_no": f"510104021-X{n % 4}", "code": WRONG}
        )
        assert status == 404
    status, _, _ = post(hub.base + "/api/v1/public/query", {**body, "case_no": other})
    assert status == 429

    assert hub.process is not None
    hub.process.stop()
    hub.restart()
    status, _, _ = post(hub.base + "/api/v1/public/query", {**body, "case_no": other})
    assert status == 429  # counted in the database, not in the process

    db = hub_db(hub)
    try:
        refusals = list(db.query("SELECT * FROM audit WHERE action = 'query.limited'"))
        scopes = [json.loads(r["detail"])["scope"] for r in refusals]
        assert scopes == ["case", "case", "client", "client"]
        assert all(r["client"] == "127.0.0.1" for r in refusals)
        assert not any(CODE in r["detail"] or WRONG in r["detail"] for r in refusals)
    finally:
        db.close()
    log = hub.process.log()
    assert CODE not in log and WRONG not in log
    assert "reached a limit" in log


def test_behind_a_trusted_proxy_each_client_is_limited_on_its_own(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Behind the reverse proxy every request comes from 127.0.0.1: without
    ``trusted_proxies`` one guesser would lock every petitioner out, with it each client
    address is counted on its own, and an address a client made up is not believed."""
    port = free_port()
    proxied = {"host": "127.0.0.1", "port": port, "trusted_proxies": ["127.0.0.1", "::1"]}
    hub = Hub(tmp_path / "hub", mosquitto, port=port, extra={"http": proxied}).start()
    try:
        db = hub_db(hub)
        try:
            (case,) = add_cases(db, 1)
        finally:
            db.close()
        url, right = hub.base + "/api/v1/public/query", {"case_no": case, "code": CODE}
        guesser, petitioner = "203.0.113.5", "198.51.100.7"
        for n in range(query.CLIENT_LIMIT):
            wrong = {"case_no": f"510104021-X{n % 4}", "code": WRONG}
            assert post(url, wrong, forwarded_for=guesser)[0] == 404
        assert post(url, right, forwarded_for=guesser)[0] == 429
        # the guesser claims to be someone else: the proxy appends what it saw
        assert post(url, right, forwarded_for=f"192.0.2.1, {guesser}")[0] == 429
        status, _, answer = post(url, right, forwarded_for=petitioner)
        assert status == 200 and answer["state"] == "registered"
        # a chain through a second trusted proxy: the address before it is the client
        assert post(url, right, forwarded_for=f"{guesser}, 127.0.0.1")[0] == 429
        db = hub_db(hub)
        try:
            clients = {
                r["client"]
                for r in db.query("SELECT client FROM audit WHERE action = ?", ["query.limited"])
            }
        finally:
            db.close()
        assert clients == {guesser}
    finally:
        hub.stop()


def test_without_trusted_proxies_a_forwarded_for_header_is_not_believed(hub: Hub) -> None:
    db = hub_db(hub)
    try:
        (case,) = add_cases(db, 1)
    finally:
        db.close()
    url = hub.base + "/api/v1/public/query"
    for n in range(query.CLIENT_LIMIT):  # each from a different made-up address
        wrong = {"case_no": f"510104021-X{n % 4}", "code": WRONG}
        assert post(url, wrong, forwarded_for=f"203.0.113.{n + 1}")[0] == 404
    status, _, _ = post(url, {"case_no": case, "code": CODE}, forwarded_for="198.51.100.7")
    assert status == 429  # all of them were 127.0.0.1
