"""Admin base classes shared by the apps."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """Rows that services create (findings, alerts, deliveries): never added or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(RecordAdmin):
    """Append-only records (consent events, merges): viewable, never edited."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False
