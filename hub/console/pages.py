"""Console pages: the login form, the box wall, one box, the cases. Data comes from
``/api/v1`` in the page."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from contracts.access import Claims, Role
from contracts.signaling import QUEUE_ROLES, WATCH_ROLES
from hub.api.auth import console_claims
from hub.api.context import client_of, ctx
from hub.api.workflow import visible

STATIC = resources.files("hub.console").joinpath("static")

LOGIN_TEXT = {
    "zh": {
        "title": "视频接访系统 · 登录",
        "heading": "视频接访管理平台",
        "user": "用户名",
        "password": "密码",
        "submit": "登录",
        "other": "English",
        "other_lang": "en",
        "invalid": "用户名或密码错误",
        "missing": "请输入用户名和密码",
        "throttled": "登录失败次数过多，请 5 分钟后再试",
    },
    "en": {
        "title": "Video Petition Reception · Sign in",
        "heading": "Video Reception Console",
        "user": "Username",
        "password": "Password",
        "submit": "Sign in",
        "other": "中文",
        "other_lang": "zh",
        "invalid": "Wrong username or password",
        "missing": "Enter username and password",
        "throttled": "Too many failed sign-ins; try again in 5 minutes",
    },
}


def lang_of(request: web.Request) -> str:
    return "en" if request.query.get("lang") == "en" else "zh"


async def login_page(request: web.Request) -> web.Response:
    lang = lang_of(request)
    t = LOGIN_TEXT[lang]
    err = request.query.get("error", "")
    message = t.get(err, "") if err in ("invalid", "missing", "throttled") else ""
    template = STATIC.joinpath("login.html").read_text("utf-8")
    page = template.format(
        lang="zh-CN" if lang == "zh" else "en",
        lang_code=lang,
        error=f'<p class="error" role="alert">{html.escape(message)}</p>' if message else "",
        **{k: html.escape(v) for k, v in t.items() if k not in ("invalid", "missing", "throttled")},
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def signed_in(request: web.Request) -> Claims:
    """The console user's claims; without a session, a redirect to the login form."""
    who = console_claims(request)
    if who is None:
        suffix = "?lang=en" if lang_of(request) == "en" else ""
        raise web.HTTPSeeOther("/login" + suffix)
    return who


def html_page(text: str, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store"},
    )


def signed_in_page(
    name: str, roles: frozenset[Role] | None = None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A static page for signed-in users (of ``roles``, if given: others get 403); users not
    signed in are sent to the login form."""

    async def page(request: web.Request) -> web.Response:
        who = signed_in(request)
        if roles is not None and who.role not in roles:
            return html_page(ROLE_REFUSED_PAGE, status=403)
        return html_page(STATIC.joinpath(name).read_text("utf-8"))

    return page


ROLE_REFUSED_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>无权使用 · Forbidden</title><link rel="stylesheet" href="/static/console.css"></head>
<body><main class="refused" role="alert" data-status="403"><h1>您的角色不能使用此页面</h1>
<p>视频接访的待接访队列由信访部门和承办人员使用，实时监看由督查人员使用。</p>
<p lang="en">Your role cannot use this page: the waiting queue is for the petition office and
officials, the live wall for monitors.</p>
<p><a href="/">返回首页 · Back</a></p></main></body></html>"""


console_page = signed_in_page("console.html")
cases_page = signed_in_page("cases.html")
_case_page = signed_in_page("case.html")

REFUSED_PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<title>无权查看 · Forbidden</title><link rel="stylesheet" href="/static/console.css"></head>
<body><main class="refused" role="alert" data-status="403"><h1>无权查看该案件</h1>
<p>该案件不在您的管辖范围内，本次访问已记录。</p>
<p lang="en">This case is outside your jurisdiction; the attempt has been recorded.</p>
<p><a href="/cases">返回案件列表 · Back to cases</a></p></main></body></html>"""


async def case_page(request: web.Request) -> web.Response:
    """``/cases/{case_no}``: refused with 403 (and audited) outside the user's jurisdiction
    or, for 检举控告 cases, outside the roles allowed to see them."""
    who = signed_in(request)
    c, case_no = ctx(request), request.match_info["case_no"]
    row = await c.store.run(
        lambda db: db.execute(
            "SELECT township, category, unit_id FROM cases WHERE case_no = ?", [case_no]
        ).fetchone()
    )
    roles = c.config.workflow.accusation_roles
    if row is not None and not visible(who, row[0], row[1], row[2], roles):
        await c.store.audit(who.sub, "case.denied", target=case_no, client=client_of(request))
        return html_page(REFUSED_PAGE, status=403)
    return await _case_page(request)


quarantine_page = signed_in_page("quarantine.html")
supervision_page = signed_in_page("supervision.html")
inbox_page = signed_in_page("inbox.html")

# Live reception: the signaling server refuses what a user's role may not do (accept from the
# queue, watch a session); the queue and the wall are refused here too, and ``/api/v1/me``
# says which of them a user has, so the pages' headers show only those links.
live_page = signed_in_page("live.html", QUEUE_ROLES)
"""``/live``: the official's waiting queue."""
call_page = signed_in_page("call.html", QUEUE_ROLES)
"""``/live/call/{session_id}``: one call; the page resumes the session on its own socket."""
wall_page = signed_in_page("wall.html", WATCH_ROLES)
"""``/wall``: the monitors' wall of live sessions, watched unseen."""
live_session_page = signed_in_page("session.html")
"""``/live/sessions/{session_id}``: one session and its monitor views."""


EDGE_SHOWN, EDGE_REFUSED = '<body data-refused="false">', '<body data-refused="true">'
"""``edge.html`` shows the box or, marked refused, only the refusal (see console.css)."""


async def edge_page(request: web.Request) -> web.Response:
    """``/edges/{node}``: one box at a glance. A box outside the user's jurisdiction gets the
    API's refusal (404, the same whether or not the box exists): the page says so and loads
    nothing of it."""
    who = signed_in(request)
    row = await ctx(request).store.edge(request.match_info["node"])
    page = STATIC.joinpath("edge.html").read_text("utf-8")
    if row is None or not who.covers(row["township"]):
        return html_page(page.replace(EDGE_SHOWN, EDGE_REFUSED, 1), status=404)
    return html_page(page)


STATIC_FILES = frozenset(
    entry.name for entry in STATIC.iterdir() if entry.name.endswith((".js", ".css"))
)
"""Every script and style sheet shipped in ``static/`` (pages are served by their routes)."""


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound()
    kind = "application/javascript" if name.endswith(".js") else "text/css"
    return web.Response(
        text=STATIC.joinpath(name).read_text("utf-8"), content_type=kind, charset="utf-8"
    )
