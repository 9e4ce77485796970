"""The data map: connected stores, their collections and fields."""

from __future__ import annotations

import json
import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from governance.crypto.fields import EncryptedTextField
from governance.datamap.spec import CollectionSpec, FieldSpec, StoreSpec


class Store(models.Model):
    """A connected system holding personal data (database, cache, SaaS API)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(_("key"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    connector_type = models.CharField(_("connector type"), max_length=32)
    # Non-secret settings; values may hold ${ENV_VAR} references resolved when connecting.
    connection = models.JSONField(_("connection settings"), default=dict, blank=True)
    # Literal secrets from the data map, encrypted under the store's own data key (JSON object).
    secrets = EncryptedTextField(_("secrets"))
    data_key_id = models.UUIDField(editable=False)
    retry = models.JSONField(_("retry policy"), default=dict, blank=True)
    # Workspace slugs whose requests search this store; empty with shared unset: every workspace.
    workspaces = models.JSONField(_("owned by workspaces"), default=list, blank=True)
    shared = models.BooleanField(_("shared by all workspaces"), null=True, blank=True, default=None)
    source_file = models.CharField(_("loaded from"), max_length=500, blank=True, default="")
    loaded_at = models.DateTimeField(_("loaded at"), auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = _("store")
        verbose_name_plural = _("stores")

    def __str__(self) -> str:
        return self.key

    def secret_values(self) -> dict:
        return json.loads(self.secrets) if self.secrets else {}

    def to_spec(self) -> StoreSpec:
        return StoreSpec(
            key=self.key, type=self.connector_type, name=self.name, description=self.description,
            connection=dict(self.connection), secrets={k: "***" for k in self.secret_values()},
            retry=dict(self.retry), workspaces=list(self.workspaces), shared=self.shared,
            collections=[c.to_spec() for c in self.collections.all()],
        )


class Collection(models.Model):
    """A table, key pattern or API resource of a store."""

    store = models.ForeignKey(Store, on_delete=models.CASCADE, related_name="collections")
    name = models.CharField(_("name"), max_length=64)
    description = models.TextField(_("description"), blank=True, default="")
    options = models.JSONField(_("connector options"), default=dict, blank=True)
    # Ordering without data (Fides' fides_meta after / erase_after): store.collection addresses.
    after = models.JSONField(_("access after"), default=list, blank=True)
    erase_after = models.JSONField(_("erase after"), default=list, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["store__key", "position"]
        verbose_name = _("collection")
        verbose_name_plural = _("collections")
        constraints = [models.UniqueConstraint(fields=["store", "name"], name="collection_unique_name")]

    def __str__(self) -> str:
        return f"{self.store.key}.{self.name}"

    def to_spec(self) -> CollectionSpec:
        return CollectionSpec(
            store=self.store.key, name=self.name, description=self.description,
            options=dict(self.options), fields=[f.to_spec() for f in self.fields.all()],
            after=list(self.after), erase_after=list(self.erase_after),
        )


class Field(models.Model):
    """A field: its data category, identity kind, references and erasure strategy."""

    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="fields")
    name = models.CharField(_("name"), max_length=128)
    category = models.CharField(_("data category"), max_length=128, blank=True, default="")
    identity = models.CharField(_("identity kind"), max_length=32, blank=True, default="")
    namespace = models.CharField(_("identity namespace"), max_length=64, blank=True, default="")
    primary_key = models.BooleanField(_("primary key"), default=False)
    references = models.JSONField(_("references"), default=list, blank=True)
    strategy = models.CharField(_("erasure strategy"), max_length=32, blank=True, default="")
    strategy_options = models.JSONField(_("strategy options"), default=dict, blank=True)
    legal_basis = models.CharField(_("legal basis for retention"), max_length=300, blank=True, default="")
    retention = models.CharField(_("retention"), max_length=100, blank=True, default="")
    description = models.TextField(_("description"), blank=True, default="")
    # Phone identity fields: the format the store keeps numbers in (spec.PHONE_FORMATS).
    format = models.CharField(_("stored format"), max_length=32, blank=True, default="")
    # The live column when the map was loaded (kind, type, length, nullable); {} when not inspected.
    column = models.JSONField(_("live column"), default=dict, blank=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["collection", "position"]
        verbose_name = _("field")
        verbose_name_plural = _("fields")
        constraints = [models.UniqueConstraint(fields=["collection", "name"], name="field_unique_name")]

    def __str__(self) -> str:
        return self.name

    def to_spec(self) -> FieldSpec:
        return FieldSpec(
            name=self.name, category=self.category, identity=self.identity, namespace=self.namespace,
            primary_key=self.primary_key, references=list(self.references), strategy=self.strategy,
            strategy_options=dict(self.strategy_options), legal_basis=self.legal_basis,
            retention=self.retention, description=self.description, column=dict(self.column),
            format=self.format,
        )
