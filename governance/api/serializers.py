"""Serializer building blocks shared by every API."""

from __future__ import annotations

from rest_framework import serializers

ERR_UNKNOWN_FIELD = "Unknown field."


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, also when nested: a typo never silently drops data.

    The error is a 400 problem with ``code: "unknown_field"`` and the unknown names under
    ``errors``.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: [ERR_UNKNOWN_FIELD] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)
