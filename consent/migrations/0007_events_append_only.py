"""Consent events and amendments are append-only in the database too (issue 11).

A trigger refuses any UPDATE of a consent event except the two chained amendments the model
allows — a merge moving ``profile`` to the survivor, and an erasure blanking ``identity_index``
(with ``redacted_at`` set) — and any UPDATE of an amendment. The chain would detect other edits
(``verify_consent_chain``); the trigger stops them from happening through the application or a
careless script. An attacker who can drop triggers is the chain's job (docs/security.md).
"""

from django.db import migrations

ALLOWED = ("profile_id", "identity_index", "redacted_at")
EVENTS, AMENDMENTS = "consent_consentevent", "consent_consentamendment"
MESSAGE = "consent events are append-only (only a merge or an erasure may amend them)"


def _columns(apps) -> list[str]:
    model = apps.get_model("consent", "ConsentEvent")
    return [f.column for f in model._meta.concrete_fields if f.column not in ALLOWED]


def trigger_sql(vendor: str, columns: list[str]) -> list[str]:
    """CREATE statements for ``vendor``; ``columns`` are the event columns no UPDATE may change
    (PostgreSQL compares whole rows instead, so a later column is covered without a migration)."""
    if vendor == "postgresql":
        return [
            f"""CREATE OR REPLACE FUNCTION consent_event_append_only() RETURNS trigger AS $$
            BEGIN
                IF (to_jsonb(NEW) - 'profile_id' - 'identity_index' - 'redacted_at')
                       IS DISTINCT FROM (to_jsonb(OLD) - 'profile_id' - 'identity_index' - 'redacted_at')
                   OR (NEW.identity_index IS DISTINCT FROM OLD.identity_index
                       AND (NEW.identity_index <> '' OR NEW.redacted_at IS NULL))
                   OR (OLD.redacted_at IS NOT NULL AND NEW.redacted_at IS DISTINCT FROM OLD.redacted_at) THEN
                    RAISE EXCEPTION '{MESSAGE} (event %)', OLD.id;
                END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""",
            f"""CREATE TRIGGER consent_event_append_only BEFORE UPDATE ON {EVENTS}
            FOR EACH ROW EXECUTE FUNCTION consent_event_append_only()""",
            """CREATE OR REPLACE FUNCTION consent_amendment_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'consent amendments are append-only (amendment %)', OLD.id;
            END $$ LANGUAGE plpgsql""",
            f"""CREATE TRIGGER consent_amendment_append_only BEFORE UPDATE ON {AMENDMENTS}
            FOR EACH ROW EXECUTE FUNCTION consent_amendment_append_only()""",
        ]
    if vendor == "sqlite":
        changed = " OR ".join(f'NEW."{c}" IS NOT OLD."{c}"' for c in columns)
        return [
            f"""CREATE TRIGGER consent_event_append_only BEFORE UPDATE ON {EVENTS}
            WHEN {changed}
              OR (NEW.identity_index IS NOT OLD.identity_index AND (NEW.identity_index <> '' OR NEW.redacted_at IS NULL))
              OR (OLD.redacted_at IS NOT NULL AND NEW.redacted_at IS NOT OLD.redacted_at)
            BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END""",
            f"""CREATE TRIGGER consent_amendment_append_only BEFORE UPDATE ON {AMENDMENTS}
            BEGIN SELECT RAISE(ABORT, 'consent amendments are append-only'); END""",
        ]
    if vendor == "mysql":
        changed = " OR ".join(f"NOT (NEW.`{c}` <=> OLD.`{c}`)" for c in columns)
        return [
            f"""CREATE TRIGGER consent_event_append_only BEFORE UPDATE ON {EVENTS} FOR EACH ROW
            BEGIN
                IF {changed}
                   OR (NOT (NEW.identity_index <=> OLD.identity_index) AND (NEW.identity_index <> '' OR NEW.redacted_at IS NULL))
                   OR (OLD.redacted_at IS NOT NULL AND NOT (NEW.redacted_at <=> OLD.redacted_at)) THEN
                    SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{MESSAGE}';
                END IF;
            END""",
            f"""CREATE TRIGGER consent_amendment_append_only BEFORE UPDATE ON {AMENDMENTS} FOR EACH ROW
            BEGIN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'consent amendments are append-only';
            END""",
        ]
    return []


DROP_SQL = {
    "postgresql": [f"DROP TRIGGER IF EXISTS consent_event_append_only ON {EVENTS}",
                   f"DROP TRIGGER IF EXISTS consent_amendment_append_only ON {AMENDMENTS}"],
    "sqlite": ["DROP TRIGGER IF EXISTS consent_event_append_only",
               "DROP TRIGGER IF EXISTS consent_amendment_append_only"],
    "mysql": ["DROP TRIGGER IF EXISTS consent_event_append_only",
              "DROP TRIGGER IF EXISTS consent_amendment_append_only"],
}


def append_only_create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.alias != "default":
        return
    for sql in trigger_sql(connection.vendor, _columns(apps)):
        schema_editor.execute(sql, None)


def append_only_drop(apps, schema_editor):
    connection = schema_editor.connection
    if connection.alias != "default":
        return
    for sql in DROP_SQL.get(connection.vendor, []):
        schema_editor.execute(sql, None)


class Migration(migrations.Migration):
    dependencies = [("consent", "0006_webhook_delivery_claim")]
    operations = [migrations.RunPython(append_only_create, append_only_drop, atomic=False)]
