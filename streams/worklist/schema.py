"""The worklist database: its tables (SQLAlchemy Core) and versioned migrations.

``schema_migrations`` records every migration applied; :func:`migrate` applies the
missing ones in order, each in its own transaction, and refuses a database written by a
newer arscore. A new version appends to :data:`MIGRATIONS` (never edits an old one), so
a database created by any release upgrades the same way. Migrations are a short list
of Python functions rather than Alembic: three tables, two dialects, no autogenerate.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    select,
    text,
)

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations", metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", String(40), nullable=False),
)

applied_offsets = Table(
    # The view's own record of what it applied, written in the same transaction as the
    # rows: after a crash it resumes here, whatever the group's committed offset says.
    "applied_offsets", metadata,
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
    Column("malformed", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("topic", "partition"),
)

latest_scores = Table(
    "latest_scores", metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("scored_at", String(40), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("p_late", Float, nullable=False),
    Column("band", String(16), nullable=False),
    Column("priority", String(40), nullable=False),         # exact decimal text, as sent
    Column("priority_value", Float, nullable=False),        # the same, for sorting/filtering
    Column("open_amount", String(40), nullable=False),
    Column("overdue_amount", String(40), nullable=False),
    Column("currency", String(3)),
    Column("open_invoices", Integer, nullable=False),
    Column("low_confidence", Boolean, nullable=False),
    Column("treatment", String(32), nullable=False),
    Column("model_version", Text, nullable=False),
    Column("labels_seen", BigInteger, nullable=False),
    Column("reasons", Text, nullable=False),                # JSON array, as sent
    Column("overdue_value", Float, nullable=False),         # overdue_amount, for sorting
    Column("oldest_days_past_due", Integer),                # when the reasons state it
    Index("ix_latest_priority", "priority_value", "customer_id"),
    Index("ix_latest_p_late", "p_late", "customer_id"),
    Index("ix_latest_overdue", "overdue_value", "customer_id"),
    # no band index: with planner statistics a band filter walks the priority index (a
    # quarter of the rows match), and every index costs each upsert
    # a rowid table on purpose: text search scans the narrow key index, not the wide rows
    # (clustered, a search for q=12345 at 100,000 customers went from 15 to 125 ms)
)

score_history = Table(
    # One row per distinct score (customer, causing event): a redelivered score is the
    # same row, so the chart never shows a point twice.
    "score_history", metadata,
    Column("customer_id", String(128), nullable=False),
    Column("event_id", String(128), nullable=False),
    Column("scored_at", String(40), nullable=False),
    Column("p_late", Float, nullable=False),
    Column("band", String(16), nullable=False),
    Column("priority", String(40), nullable=False),
    # no second index: a customer's rows are found by the key's prefix and sorted by time
    # on read (hundreds of rows); one index fewer to maintain on every score written
    PrimaryKeyConstraint("customer_id", "event_id"),
    sqlite_with_rowid=False,
)

alerts = Table(
    "alerts", metadata,
    Column("alert_id", String(128), primary_key=True),     # deterministic: de-duplicates
    Column("kind", String(32), nullable=False),
    Column("customer_id", String(128), nullable=False),
    Column("raised_at", String(40), nullable=False),
    Column("band", String(16), nullable=False),
    Column("p_late", Float, nullable=False),
    Column("previous_p_late", Float, nullable=False),
    Column("priority", String(40), nullable=False),
    Column("treatment", String(32), nullable=False),
    Column("message", Text, nullable=False),
    Column("invoice_id", String(128)),
    Column("reasons", Text, nullable=False),
    Index("ix_alerts_customer", "customer_id", "raised_at"),
    Index("ix_alerts_time", "raised_at", "alert_id"),
    Index("ix_alerts_kind_time", "kind", "raised_at", "alert_id"),
)


class SchemaError(RuntimeError):
    """The database cannot be used by this version of arscore (one line for the user)."""


def _v1(conn: Connection) -> None:
    metadata.create_all(conn, tables=[applied_offsets, latest_scores, score_history, alerts])


Migration = tuple[int, str, Callable[[Connection], None]]
MIGRATIONS: tuple[Migration, ...] = (
    (1, "latest scores, score history, alerts, applied offsets", _v1),
)
"""(version, description, step) in order; append, never edit a released step."""

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(conn: Connection) -> int:
    """The highest migration applied (0 for an empty database)."""
    schema_migrations.create(conn, checkfirst=True)
    found = conn.execute(select(schema_migrations.c.version)).scalars().all()
    return max(found, default=0)


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`LATEST_VERSION`; returns how many steps were applied.

    Safe when several ``arscore web`` processes start together: on PostgreSQL an advisory
    lock serialises them; SQLite takes its write lock with the first statement.
    """
    applied = 0
    for version, description, step in MIGRATIONS:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(72657301)"))
            have = current_version(conn)
            if have > LATEST_VERSION:
                raise SchemaError(f"the worklist database is at schema version {have}, newer "
                                  f"than this arscore knows ({LATEST_VERSION}); upgrade arscore")
            if have >= version:
                continue
            step(conn)
            conn.execute(schema_migrations.insert().values(
                version=version, description=description,
                applied_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
            applied += 1
    with engine.connect() as conn:
        have = current_version(conn)
        conn.commit()
    if have > LATEST_VERSION:
        raise SchemaError(f"the worklist database is at schema version {have}, newer than "
                          f"this arscore knows ({LATEST_VERSION}); upgrade arscore")
    return applied
