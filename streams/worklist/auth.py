"""Token auth for every page and API call when ``ARSCORE_WEB_TOKEN`` is set.

API clients send ``Authorization: Bearer <token>``; people use the login form, which
sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never the token
itself). Comparisons are constant-time. Without a token the service relies on binding
127.0.0.1 (the default); anything listening wider should set one.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from streams.settings import Secret

COOKIE = "arscore_session"
OPEN_PATHS = ("/login", "/static/")
"""Reachable without the token: the login form and its stylesheet."""


def session_value(token: Secret) -> str:
    """What the login cookie holds: proves the token was given, without holding it."""
    return hmac.new(token.reveal().encode(), b"arscore-web-session-v1", hashlib.sha256).hexdigest()


def token_matches(token: Secret, given: str) -> bool:
    return hmac.compare_digest(token.reveal().encode(), given.encode())


def is_authenticated(request: Request, token: Secret) -> bool:
    """True when no token is configured, or the request carries it (header or cookie)."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token_matches(token, given.strip()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return bool(cookie) and hmac.compare_digest(cookie.encode(), session_value(token).encode())


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path on this site (no ``//host`` or scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def middleware(token: Secret) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                          Awaitable[Response]]:
    """HTTP middleware: refuse unauthenticated requests (401 for the API, login for pages)."""

    async def guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]
                    ) -> Response:
        path = request.url.path
        if not token or path.startswith(OPEN_PATHS) or is_authenticated(request, token):
            return await call_next(request)
        wants_html = (request.method == "GET" and not path.startswith(("/api/", "/fragments/"))
                      and path not in ("/openapi.json",))
        if wants_html:
            target = path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return JSONResponse({"error": "authentication required: send the header "
                                      "'Authorization: Bearer <ARSCORE_WEB_TOKEN>'"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    return guard
