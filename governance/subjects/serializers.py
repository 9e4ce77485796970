"""Input and output shapes for the profile API. Output is masked unless revealed."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from governance.access.masking import mask_value
from governance.api.serializers import StrictSerializer
from governance.subjects.models import SENSITIVE_PROFILE_FIELDS, IdentityKind, Jurisdiction, Profile


class IdentityInputSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=IdentityKind.choices)
    value = serializers.CharField(max_length=320, trim_whitespace=True)
    namespace = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)


class AttributesSerializer(StrictSerializer):
    full_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kana_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    address = serializers.CharField(max_length=500, required=False, allow_blank=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True)
    birth_date = serializers.DateField(required=False)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        if "birth_date" in values:
            values["birth_date"] = values["birth_date"].isoformat()
        return values


class ProfileUpsertSerializer(StrictSerializer):
    workspace = serializers.SlugField()
    identities = IdentityInputSerializer(many=True, allow_empty=False, max_length=20)
    attributes = AttributesSerializer(required=False)
    jurisdiction = serializers.ChoiceField(choices=Jurisdiction.choices, required=False)
    locale = serializers.ChoiceField(choices=[("en", "en"), ("ja", "ja")], required=False)


class RevealSerializer(StrictSerializer):
    fields = serializers.ListField(
        child=serializers.ChoiceField(choices=[*SENSITIVE_PROFILE_FIELDS, "identities"]),
        required=False, default=list, max_length=10,
    )
    reason = serializers.CharField(min_length=5, max_length=500)


class IdentityOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    namespace = serializers.CharField()
    value = serializers.SerializerMethodField()
    verified = serializers.BooleanField()

    def get_value(self, identity) -> str | None:
        return mask_value(identity.value, kind=identity.kind)


class ProfileOutputSerializer(serializers.ModelSerializer):
    """A profile with every personal value masked (reveal is a separate, audited call)."""

    workspace = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    attributes = serializers.SerializerMethodField()
    identities = IdentityOutputSerializer(many=True, read_only=True)
    masked = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = [
            "id", "workspace", "jurisdiction", "status", "locale", "attributes", "identities",
            "masked", "created_at", "updated_at",
        ]

    @extend_schema_field(
        {"type": "object", "additionalProperties": {"type": "string", "nullable": True},
         "example": {"full_name": "山••••", "address": "東••••••••"}}
    )
    def get_attributes(self, profile) -> dict:
        return {name: mask_value(getattr(profile, name)) for name in SENSITIVE_PROFILE_FIELDS}

    def get_masked(self, profile) -> bool:
        return True


class RevealOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    values = serializers.DictField()
    reason = serializers.CharField()
