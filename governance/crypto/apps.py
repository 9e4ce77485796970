from django.apps import AppConfig


class CryptoConfig(AppConfig):
    name = "governance.crypto"
    label = "crypto"
    verbose_name = "Encryption keys"

    def ready(self) -> None:
        from governance.crypto import checks  # noqa: F401  (registers system checks)
