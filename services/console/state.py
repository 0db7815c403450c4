"""What the console's application holds, as typed aiohttp keys (shared by the wiring and the pages)."""

import asyncpg
import jinja2
from aiohttp import web

from services.console.auth import LoginThrottle
from shared.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
POOL = web.AppKey("pool", asyncpg.Pool)
KEY = web.AppKey("key", bytes)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
THROTTLE = web.AppKey("throttle", LoginThrottle)
