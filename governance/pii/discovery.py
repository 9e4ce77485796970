"""Store discovery: sample rows of every table of a SQL database, suggest a data category per column.

Works on any SQLAlchemy URL (PostgreSQL, MariaDB/MySQL, SQLite). Values never leave this
module: suggestions hold the column, the entity, the category and counts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from governance.pii.scanner import Scanner

# Presidio entity -> data category of the data map (fideslang ``user.*`` names).
CATEGORY_FOR_ENTITY = {
    "EMAIL_ADDRESS": "user.contact.email",
    "PHONE_NUMBER": "user.contact.phone_number",
    "PERSON": "user.name",
    "LOCATION": "user.contact.address",
    "JP_POSTAL_CODE": "user.contact.address.postal_code",
    "CREDIT_CARD": "user.financial",
    "JP_MY_NUMBER": "user.government_id",
    "US_SSN": "user.government_id",
    "IP_ADDRESS": "user.device.ip_address",
}
MIN_SHARE = 0.3  # a column is suggested when at least this share of sampled values match


@dataclass(frozen=True)
class ColumnGuess:
    collection: str
    column: str
    entity_type: str
    data_category: str
    confidence: float
    sampled: int
    matched: int


def url_masked(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as such, not raised from the admin
        return "(invalid URL)"


def engine_create(url: str) -> sa.Engine:
    kwargs: dict = {}
    if url.startswith(("postgresql", "mysql")):
        kwargs["connect_args"] = {"connect_timeout": 5}
    return sa.create_engine(url, **kwargs)


def tables_list(engine: sa.Engine) -> list[tuple[str | None, str]]:
    inspector = sa.inspect(engine)
    return [(None, name) for name in sorted(inspector.get_table_names())]


def _plain(value):
    # Only text and integers can be scanned; dates, decimals and blobs are skipped.
    if isinstance(value, str | int) and not isinstance(value, bool):
        return value
    return None


def table_sample(engine: sa.Engine, table: str, limit: int, schema: str | None = None) -> list[dict]:
    meta = sa.MetaData()
    reflected = sa.Table(table, meta, autoload_with=engine, schema=schema)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(reflected).limit(limit)).mappings().all()
    return [{str(k): _plain(v) for k, v in row.items()} for row in rows]


def columns_suggest(*, collection: str, rows: list[dict], scanner: Scanner) -> list[ColumnGuess]:
    """Return a guess per column whose sampled values mostly hold one kind of personal data."""
    if not rows:
        return []
    sampled = Counter()
    for row in rows:
        for column, value in row.items():
            if value not in (None, ""):
                sampled[column] += 1
    findings = scanner.scan_records(rows)
    matched: dict[str, Counter] = defaultdict(Counter)
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record_findings in findings:
        seen = set()
        for finding in record_findings:
            column = finding.field_path.split(".", 1)[0].split("[", 1)[0]
            key = (column, finding.entity_type)
            scores[key].append(finding.score)
            if key not in seen:
                seen.add(key)
                matched[column][finding.entity_type] += 1
    guesses = []
    for column, counts in matched.items():
        entity, count = counts.most_common(1)[0]
        total = sampled.get(column, 0)
        category = CATEGORY_FOR_ENTITY.get(entity)
        if not total or category is None or count / total < MIN_SHARE:
            continue
        mean_score = sum(scores[(column, entity)]) / len(scores[(column, entity)])
        guesses.append(ColumnGuess(
            collection=collection, column=column, entity_type=entity, data_category=category,
            confidence=round(min(1.0, count / total) * mean_score, 3), sampled=total, matched=count,
        ))
    return sorted(guesses, key=lambda g: g.column)


def store_discover(
    *, url: str, sample_size: int, scanner: Scanner,
    on_table: Callable[[int, int, str, list[ColumnGuess]], None] | None = None,
    tables: Iterable[str] | None = None,
) -> list[ColumnGuess]:
    """Sample each table and return all guesses; ``on_table(done, total, table, guesses)``."""
    engine = engine_create(url)
    try:
        names = [name for _schema, name in tables_list(engine)]
        if tables is not None:
            wanted = set(tables)
            names = [name for name in names if name in wanted]
        guesses: list[ColumnGuess] = []
        for done, name in enumerate(names, start=1):
            table_guesses = columns_suggest(
                collection=name, rows=table_sample(engine, name, sample_size), scanner=scanner
            )
            guesses.extend(table_guesses)
            if on_table:
                on_table(done, len(names), name, table_guesses)
        return guesses
    finally:
        engine.dispose()
