"""Typed keys of the kiosk application's shared state."""

from __future__ import annotations

from aiohttp import web

from edge.config import EdgeConfig
from edge.store.db import EdgeStore
from edge.sync.presence import PresenceLink

LINK = web.AppKey("link", PresenceLink)
CONFIG = web.AppKey("config", EdgeConfig)
VERSION = web.AppKey("version", str)
STORE = web.AppKey("store", EdgeStore)
KEY = web.AppKey("kiosk_key", bytes)
CLERK_PASSWORD = web.AppKey("clerk_password", str)
