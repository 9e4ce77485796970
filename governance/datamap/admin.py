"""Admin: the data map (stores, collections, fields) and its traversal graph as SVG."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from governance.datamap.models import Collection, Field, Store
from governance.datamap.selectors import datamap_graph


class CollectionInline(admin.TabularInline):
    model = Collection
    fields = ("name", "description", "options")
    extra = 0
    show_change_link = True


class FieldInline(admin.TabularInline):
    model = Field
    fields = ("name", "category", "identity", "namespace", "primary_key", "references", "strategy",
              "strategy_options", "legal_basis", "column")
    readonly_fields = ("column",)
    extra = 0


@admin.register(Store)
class StoreAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "connector_type", "scope", "collection_count", "source_file", "loaded_at")
    search_fields = ("key", "name")
    list_filter = ("connector_type",)
    readonly_fields = ("graph", "source_file", "loaded_at")
    exclude = ("secrets", "data_key_id")
    inlines = [CollectionInline]
    change_list_template = "admin/datamap/store/change_list.html"

    @admin.display(description=_("searched for"))
    def scope(self, obj: Store) -> str:
        if obj.workspaces and not obj.shared:
            return ", ".join(obj.workspaces)
        return str(_("every workspace (shared)")) if obj.shared else str(_("every workspace (not said)"))

    @admin.display(description=_("collections"))
    def collection_count(self, obj: Store) -> int:
        return obj.collections.count()

    @admin.display(description=_("data map graph"))
    def graph(self, obj: Store | None = None) -> str:
        # The SVG is built from escaped names only (graph.svg escapes every label).
        return mark_safe(datamap_graph().svg())  # noqa: S308

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "datamap_svg": self.graph()}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "field_count", "seed")
    list_filter = ("store",)
    inlines = [FieldInline]

    @admin.display(description=_("fields"))
    def field_count(self, obj: Collection) -> int:
        return obj.fields.count()

    @admin.display(description=_("identity seed"), boolean=True)
    def seed(self, obj: Collection) -> bool:
        return obj.fields.exclude(identity="").exists()


@admin.register(Field)
class FieldAdmin(admin.ModelAdmin):
    list_display = ("name", "collection", "category", "identity", "strategy", "references_text")
    list_filter = ("strategy", "identity", "collection__store")
    search_fields = ("name", "category")

    @admin.display(description=_("references"))
    def references_text(self, obj: Field) -> str:
        return format_html("{}", ", ".join(obj.references))
