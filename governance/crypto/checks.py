"""System checks for the key ring and the key store."""

from django.conf import settings
from django.core import checks

from governance.crypto.keyring import KeyRingError, parse_master_keys


@checks.register(checks.Tags.security)
def check_master_keys(app_configs, **kwargs):
    try:
        parse_master_keys(settings.MAMORU_MASTER_KEYS)
    except KeyRingError as exc:
        return [checks.Error(f"MAMORU_MASTER_KEYS: {exc}", id="crypto.E010")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def check_keystore_separate(app_configs, **kwargs):
    default, keystore = settings.DATABASES["default"], settings.DATABASES.get("keystore")
    if not keystore:
        return [checks.Error("No 'keystore' database alias: data keys need their own store.", id="crypto.E011")]
    same = all(default.get(k) == keystore.get(k) for k in ("ENGINE", "NAME", "HOST", "PORT"))
    if same:
        return [
            checks.Error(
                "The key store is the main database: crypto-shredding would not survive a restore "
                "of an old backup. Point MAMORU_KEYSTORE_URL at a separate database.",
                id="crypto.E012",
            )
        ]
    return []
