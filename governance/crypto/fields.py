"""Encrypted model fields, usable in any model.

A model with encrypted fields needs a UUID primary key set before saving (``default=uuid.uuid4``)
and a ``data_key_id`` attribute naming the data key (DEK) its values are encrypted under. The
column stores ``v1.…`` ciphertext; the plaintext is decrypted lazily on first attribute access.

- Associated data is ``app_label.model.field:pk``: a ciphertext moved to another row or field
  fails with :class:`DecryptionFailed`.
- After crypto-shredding the attribute reads as ``None``.
- ``QuerySet.update(field=…)`` and lookups on the plaintext are refused; save the instance, and
  look values up through a blind index.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core import checks
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from governance.crypto import envelope

logger = logging.getLogger(__name__)


class Sealed:
    """A ciphertext as read from, or about to be written to, the database."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token

    def __repr__(self) -> str:
        return "<Sealed>"


def field_aad(instance: models.Model, field: models.Field) -> bytes:
    meta = instance._meta
    return f"{meta.app_label}.{meta.model_name}.{field.name}:{instance.pk}".encode()


class EncryptedAttribute(DeferredAttribute):
    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        value = super().__get__(instance, cls)
        if isinstance(value, Sealed):
            try:
                value = envelope.decrypt(
                    dek_id=instance.data_key_id, token=value.token, aad=field_aad(instance, self.field)
                )
            except envelope.DataKeyDestroyed:
                value = None
            instance.__dict__[self.field.attname] = value
        return value

    def __set__(self, instance, value):
        # A data descriptor, so reads always pass through __get__ (and decrypt lazily).
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """A text field stored as AES-256-GCM ciphertext under the row's data key."""

    descriptor_class = EncryptedAttribute
    empty_strings_allowed = True

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("null", True)
        kwargs.setdefault("blank", True)
        super().__init__(*args, **kwargs)

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        model = self.model
        if not isinstance(model._meta.pk, models.UUIDField):
            errors.append(
                checks.Error(
                    "Models with encrypted fields need a UUID primary key with a default.",
                    obj=self,
                    id="crypto.E001",
                )
            )
        if not any(f.attname == "data_key_id" for f in model._meta.concrete_fields) and not hasattr(
            model, "data_key_id"
        ):
            errors.append(
                checks.Error(
                    "Models with encrypted fields need a 'data_key_id' attribute.",
                    obj=self,
                    id="crypto.E002",
                )
            )
        return errors

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return None
        return Sealed(value)

    def to_python(self, value):
        if isinstance(value, Sealed) or value is None:
            return value
        return str(value)

    def pre_save(self, model_instance, add):
        value = model_instance.__dict__.get(self.attname)
        if value is None or isinstance(value, Sealed):
            return value
        token = envelope.encrypt(
            dek_id=model_instance.data_key_id,
            plaintext=str(value),
            aad=field_aad(model_instance, self),
        )
        return Sealed(token)

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if isinstance(value, Sealed):
            return value.token
        raise TypeError(
            f"{self.model.__name__}.{self.name} is encrypted: save the instance instead of "
            "writing or filtering on plaintext (use the blind index for lookups)."
        )

    def get_prep_value(self, value):
        return value

    def value_to_string(self, obj):
        # Serialisation (dumpdata, audit snapshots) never sees plaintext.
        raw = obj.__dict__.get(self.attname)
        return raw.token if isinstance(raw, Sealed) else "[encrypted]"

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


class BlindIndexField(models.CharField):
    """Holds a blind index (hex HMAC) for an encrypted value; see ``blind_index``."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)
