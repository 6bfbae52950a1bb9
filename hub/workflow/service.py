"""The workflow's background work in the hub: the deadline scan on a timer, and delivery of
reminders through their senders.

Senders are pluggable by channel. ``console``: the console's inbox reads ``notifications``
directly, so a row is delivered when written. ``webhook``: each row is POSTed as JSON to the
configured hook (how SMS gateways are reached) with an ``Idempotency-Key`` naming the row, and
marked sent only after a 2xx; failures retry with backoff. A crash between the POST and the mark
resends the row with the same key, for the gateway to drop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from typing import Any, Protocol

import aiohttp
from sqlite_utils import Database

from hub.config import WebhookConfig, WorkflowConfig
from hub.store.db import HubStore
from hub.workflow.duplicates import suggest_new
from hub.workflow.engine import Rules
from hub.workflow.query import prune_attempts
from hub.workflow.scanner import scan
from runtime.config import read_secret
from runtime.logs import QuietLogger
from runtime.sqlite import transaction

log = logging.getLogger(__name__)
quiet = QuietLogger(log)
BATCH = 100
MAX_BACKOFF_SECONDS = 3600
DUPLICATES_PER_SCAN = 1000


class Sender(Protocol):
    channel: str

    async def send(self, notification: dict[str, Any]) -> None:
        """Deliver one notification row; raise to have it retried later."""


class WebhookSender:
    channel = "webhook"

    def __init__(self, config: WebhookConfig, session: aiohttp.ClientSession) -> None:
        self.config, self.session = config, session
        self._token = read_secret(config.token_file) if config.token_file else None

    async def send(self, notification: dict[str, Any]) -> None:
        headers = {"Idempotency-Key": f"xfv-notification-{notification['id']}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = {
            k: notification[k] for k in ("id", "case_no", "kind", "recipient", "text", "created_at")
        }
        timeout = aiohttp.ClientTimeout(total=self.config.timeout)
        async with self.session.post(
            self.config.url, json=body, headers=headers, timeout=timeout
        ) as resp:
            if resp.status // 100 != 2:
                raise RuntimeError(f"webhook answered {resp.status}: {(await resp.text())[:200]}")


def channels(config: WorkflowConfig) -> list[str]:
    return ["console", "webhook"] if config.webhook else ["console"]


def _due(db: Database, channel: str, now: str) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT * FROM notifications WHERE channel = ? AND sent_at IS NULL "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id LIMIT ?",
            [channel, now, BATCH],
        )
    )


def _mark(
    db: Database, done: list[int], failed: list[tuple[int, int, str]], now: dt.datetime
) -> None:
    with transaction(db):
        stamp = now.isoformat(timespec="milliseconds")
        for nid in done:
            db.execute(
                "UPDATE notifications SET sent_at = ?, attempts = attempts + 1 WHERE id = ?",
                [stamp, nid],
            )
        for nid, attempts, reason in failed:
            wait = min(MAX_BACKOFF_SECONDS, 5 * 2**attempts)
            retry = (now + dt.timedelta(seconds=wait)).isoformat(timespec="milliseconds")
            db.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ? WHERE id = ?",
                [reason[:500], retry, nid],
            )


async def deliver(store: HubStore, sender: Sender) -> int:
    """Send what is due on ``sender``'s channel; returns how many were delivered."""
    now = dt.datetime.now(dt.UTC)
    rows = await store.run(lambda db: _due(db, sender.channel, now.isoformat()))
    done: list[int] = []
    failed: list[tuple[int, int, str]] = []
    for row in rows:
        try:
            await sender.send(row)
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            quiet.warning("reminder %d to %s failed: %s", row["id"], sender.channel, exc)
            failed.append((row["id"], row["attempts"], str(exc) or type(exc).__name__))
        else:
            done.append(row["id"])
    if rows:
        await store.run(lambda db: _mark(db, done, failed, now))
    return len(done)


def _suggest(db: Database, chunk: list[str]) -> int:
    return suggest_new(db, chunk, dt.datetime.now(dt.UTC))


async def record_duplicates(store: HubStore, cases: list[str]) -> None:
    """Record likely duplicates of newly adopted cases, a few at a time so neither the scan's
    transaction nor other writers wait on it (a backlog of ``DUPLICATES_PER_SCAN`` or more, as
    after a restore, is left to the console's on-demand suggestions)."""
    for start in range(0, min(len(cases), DUPLICATES_PER_SCAN), 20):
        chunk = cases[start : start + 20]
        await store.run(functools.partial(_suggest, chunk=chunk))


async def run_workflow(store: HubStore, rules: Rules, config: WorkflowConfig) -> None:
    """Scan deadlines and deliver reminders every ``scan_interval`` seconds, until cancelled."""
    async with aiohttp.ClientSession() as session:
        senders: list[Sender] = []
        if config.webhook:
            senders.append(WebhookSender(config.webhook, session))
        names = channels(config)
        rebuild = True  # the first scan after a start recomputes every case's light
        while True:
            try:
                now = dt.datetime.now(dt.UTC)
                result = await store.run(
                    functools.partial(scan, rules=rules, now=now, channels=names, rebuild=rebuild)
                )
                rebuild = False
                await store.run(functools.partial(prune_attempts, now=now))
                await record_duplicates(store, result.adopted)
                for sender in senders:
                    await deliver(store, sender)
            except Exception:
                log.exception("workflow scan failed; retrying in %.0f s", config.scan_interval)
            await asyncio.sleep(config.scan_interval)
