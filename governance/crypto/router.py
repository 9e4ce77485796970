"""Route the key store's models to the ``keystore`` database and everything else to ``default``."""

KEYSTORE_APPS = {"crypto"}
# django-auditlog's own LogEntry is swapped for audit.AuditEntry, but its migrations do not know
# that and would create an orphan table (which also blocks TRUNCATE-based test flushes).
NEVER_MIGRATED_APPS = {"auditlog"}


class KeyStoreRouter:
    def db_for_read(self, model, **hints):
        return "keystore" if model._meta.app_label in KEYSTORE_APPS else "default"

    db_for_write = db_for_read

    def allow_relation(self, obj1, obj2, **hints):
        return (obj1._meta.app_label in KEYSTORE_APPS) == (obj2._meta.app_label in KEYSTORE_APPS)

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if app_label in NEVER_MIGRATED_APPS:
            return False
        if app_label in KEYSTORE_APPS:
            return db == "keystore"
        # contenttypes/auth tables are needed nowhere in the key store.
        return db == "default"
