"""The web service's own settings, read from ``ARSCORE_*`` variables next to the shared
:class:`streams.settings.Settings` (broker, topics, data dir, bind host).

Kept here rather than in ``Settings`` because only ``arscore web`` reads them; the
database URL and the token are secrets (they may hold a password) and print as ``***``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streams.settings import Secret, Settings

WEB_VARIABLES = ("ARSCORE_DATABASE_URL", "ARSCORE_WEB_TOKEN", "ARSCORE_WORKLIST_PORT",
                 "ARSCORE_WEB_GROUP", "ARSCORE_WEB_BATCH_MAX")
"""The variables only ``arscore web`` reads (besides the shared Settings ones)."""


@dataclass(frozen=True)
class WebConfig:
    """Everything ``arscore web`` needs besides the shared settings."""

    database_url: Secret
    """SQLAlchemy URL: ``sqlite:///...`` (default, under ``ARSCORE_DATA_DIR``) or
    ``postgresql://user:pass@host/db``."""
    token: Secret
    """When non-empty, every page and API call needs it (bearer header or login cookie)."""
    host: str
    port: int
    group_id: str
    """The view's consumer group: its own, never the worker's (``<app_id>-web``)."""
    batch_max: int = 10_000
    """Most records applied in one database transaction (what the consumer has fetched,
    without waiting for more). Commits dominate the ingest cost: at 100,000 customers
    SQLite applied ~23,000 records/s in batches of 2,000 and ~31,000 in batches of 10,000."""
    poll_seconds: float = 0.2
    session_timeout: float = 10.0

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql`` (from the URL's scheme)."""
        return self.database_url.reveal().split(":", 1)[0].split("+", 1)[0]

    @property
    def safe_database(self) -> str:
        """The database as it may appear in logs: scheme and host or file, no password."""
        url = self.database_url.reveal()
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's default driver is psycopg2).

    >>> sqlalchemy_url("postgresql://u@h/db")
    'postgresql+psycopg://u@h/db'
    >>> sqlalchemy_url("sqlite:///x.db")
    'sqlite:///x.db'
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def web_config(settings: Settings, env: Mapping[str, str] | None = None,
               port: int | None = None) -> WebConfig:
    """Read the web settings; a bad value raises ValueError naming the variable."""
    env = os.environ if env is None else env
    url = env.get("ARSCORE_DATABASE_URL", "").strip()
    if not url:
        url = "sqlite:///" + str(Path(settings.data_dir).resolve() / "worklist.db")
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ValueError(f"ARSCORE_DATABASE_URL: unsupported scheme {scheme!r} "
                         "(use sqlite:///PATH or postgresql://...)")
    raw_port = env.get("ARSCORE_WORKLIST_PORT", "8765")
    raw_batch = env.get("ARSCORE_WEB_BATCH_MAX", "10000")
    try:
        chosen = int(raw_port) if port is None else port
    except ValueError:
        raise ValueError(f"ARSCORE_WORKLIST_PORT={raw_port!r} is not valid: not an integer") from None
    try:
        batch_max = int(raw_batch)
        if batch_max < 1:
            raise ValueError
    except ValueError:
        raise ValueError(f"ARSCORE_WEB_BATCH_MAX={raw_batch!r} is not valid: "
                         "must be a positive integer") from None
    if not 0 <= chosen <= 65535:
        raise ValueError(f"port {chosen} is not valid: must be 0-65535")
    return WebConfig(database_url=Secret(url), token=Secret(env.get("ARSCORE_WEB_TOKEN", "")),
                     host=settings.web_host, port=chosen,
                     group_id=env.get("ARSCORE_WEB_GROUP", f"{settings.app_id}-web"),
                     batch_max=batch_max,
                     session_timeout=settings.session_timeout)
