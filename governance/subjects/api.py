"""Profile API: list and retrieve (masked, each read audited), upsert, and audited reveal."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from audit.models import Outcome
from audit.services import (
    access_denied_endpoint,
    access_record,
    access_record_many,
    access_recording,
)
from governance.access import policy
from governance.access.permissions import CanListProfiles, VisibleProfilesFilter
from governance.api.serializers import StrictSerializer
from governance.subjects.identities import InvalidIdentity
from governance.subjects.models import Profile, ProfileStatus, Workspace
from governance.subjects.selectors import identity_index, profiles_preload_keys
from governance.subjects.serializers import (
    ProfileOutputSerializer,
    ProfileUpsertSerializer,
    RevealOutputSerializer,
    RevealSerializer,
)
from governance.subjects.services import IdentityInput, profile_reveal, profile_upsert

MASKED_FIELDS = ["attributes:masked", "identities:masked"]
IDENTITY_PARAMS = ("email", "phone", "customer_id", "browser_id")


class ProfileSearchSerializer(StrictSerializer):
    """The list's filters as a JSON body: identities never travel in a (logged) query string."""

    workspace = serializers.SlugField(required=False)
    email = serializers.CharField(required=False, max_length=320)
    phone = serializers.CharField(required=False, max_length=64)
    customer_id = serializers.CharField(required=False, max_length=320)
    namespace = serializers.CharField(required=False, allow_blank=True, max_length=64)
    browser_id = serializers.CharField(required=False, max_length=128)
    status = serializers.ChoiceField(choices=ProfileStatus.values, required=False)


@extend_schema_view(
    list=extend_schema(
        summary="List profiles you may see (masked)",
        parameters=[
            OpenApiParameter("workspace", str, description="Workspace slug"),
            OpenApiParameter("email", str, description="Exact e-mail (blind-index lookup)"),
            OpenApiParameter("phone", str, description="Exact phone (E.164 or national)"),
            OpenApiParameter("customer_id", str, description="Customer id; needs `namespace`"),
            OpenApiParameter("namespace", str, description="Store that issued the customer id"),
            OpenApiParameter("browser_id", str),
            OpenApiParameter("status", str, enum=ProfileStatus.values),
        ],
    ),
    retrieve=extend_schema(summary="Retrieve one profile (masked); the read is audited"),
)
class ProfileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Profiles of data subjects. Values are masked; revealing needs permission and a reason."""

    serializer_class = ProfileOutputSerializer
    permission_classes = [CanListProfiles]
    filter_backends = [VisibleProfilesFilter]
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_queryset(self):
        queryset = Profile.objects.select_related("workspace").prefetch_related("identities")
        if self.action == "search":
            body = ProfileSearchSerializer(data=self.request.data)
            body.is_valid(raise_exception=True)
            params = body.validated_data
        elif self.action == "list":
            params = self.request.query_params
        else:
            return queryset
        region = ""
        if slug := params.get("workspace"):
            queryset = queryset.filter(workspace__slug=slug)
            workspace = Workspace.objects.filter(slug=slug).first()
            region = workspace.default_jurisdiction if workspace else ""
        if wanted := params.get("status"):
            if wanted not in ProfileStatus.values:
                raise ValidationError({"status": [f"One of {', '.join(ProfileStatus.values)}."]})
            queryset = queryset.filter(status=wanted)
        for kind in IDENTITY_PARAMS:
            if value := params.get(kind):
                try:
                    index = identity_index(
                        kind=kind, value=value, namespace=params.get("namespace", ""), jurisdiction=region
                    )
                except InvalidIdentity as exc:
                    raise ValidationError({kind: [exc.detail]}, code="invalid_identity") from exc
                queryset = queryset.filter(identities__kind=kind, identities__value_index=index)
        return queryset.distinct()

    def permission_denied(self, request, message=None, code=None):
        if request.user and request.user.is_authenticated:
            access_denied_endpoint(actor=request.user, model=Profile, request=request, via=f"api:{self.action}")
        super().permission_denied(request, message=message, code=code)

    def get_object(self) -> Profile:
        lookup = self.kwargs[self.lookup_field]
        visible = self.filter_queryset(self.get_queryset()).filter(pk=lookup).first()
        if visible is None:
            hidden = Profile.objects.filter(pk=lookup).first()
            if hidden is not None:
                access_record(
                    actor=self.request.user, obj=hidden, fields=[], outcome=Outcome.DENIED,
                    request=self.request, via=f"api:{self.action}",
                )
            raise NotFound()
        return visible

    def list(self, request, *args, **kwargs):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        profiles_preload_keys(page)
        data = self.get_serializer(page, many=True).data
        access_record_many(actor=request.user, objs=page, fields=MASKED_FIELDS, request=request, via="api:list")
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="profiles_search",
        summary="Search profiles by identity (masked); identities in the body, never in the URL",
        description=(
            "Same filters and answer as `GET /api/v1/profiles/`, with the filters in a JSON body so that "
            "an e-mail or phone never reaches a web server's or proxy's access log. Pages: `?limit=&offset=`."
        ),
        request=ProfileSearchSerializer,
        responses={200: ProfileOutputSerializer(many=True)},
        examples=[OpenApiExample("By e-mail", value={"workspace": "shop-jp", "email": "hanako@example.jp"},
                                 request_only=True)],
    )
    @action(detail=False, methods=["post"], url_path="search")
    def search(self, request):
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        profiles_preload_keys(page)
        data = self.get_serializer(page, many=True).data
        access_record_many(actor=request.user, objs=page, fields=MASKED_FIELDS, request=request, via="api:search")
        return self.get_paginated_response(data)

    def retrieve(self, request, *args, **kwargs):
        profile = self.get_object()
        # The read's entry is stored while the serializer decrypts (audit.services.access_recording).
        with access_recording(actor=request.user, obj=profile, fields=MASKED_FIELDS, request=request,
                              via="api:retrieve"):
            data = self.get_serializer(profile).data
        return Response(data)

    @extend_schema(
        summary="Create or update a profile by identity (identity resolution, 名寄せ)",
        request=ProfileUpsertSerializer,
        responses={201: ProfileOutputSerializer, 200: ProfileOutputSerializer},
        examples=[
            OpenApiExample(
                "Japanese customer",
                value={
                    "workspace": "shop-jp",
                    "identities": [
                        {"kind": "email", "value": "hanako@example.jp"},
                        {"kind": "phone", "value": "090-1234-5678"},
                        {"kind": "customer_id", "namespace": "shop", "value": "C-10023"},
                    ],
                    "attributes": {"full_name": "佐藤 花子", "kana_name": "サトウ ハナコ"},
                    "jurisdiction": "JP",
                },
                request_only=True,
            )
        ],
    )
    def create(self, request):
        if not request.user.has_perm("subjects.add_profile"):
            raise PermissionDenied("Your role may not create or update profiles.")
        body = ProfileUpsertSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        workspace = policy.workspaces_visible_to(request.user).filter(slug=values["workspace"]).first()
        if workspace is None:
            raise ValidationError({"workspace": ["Unknown workspace."]}, code="unknown_workspace")
        result = profile_upsert(
            workspace=workspace,
            identities=[IdentityInput(i["kind"], i["value"], i.get("namespace", "")) for i in values["identities"]],
            attributes=values.get("attributes") or {},
            jurisdiction=values.get("jurisdiction"),
            locale=values.get("locale"),
            actor=request.user,
        )
        data = ProfileOutputSerializer(result.profile).data
        return Response(data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(
        summary="Reveal personal data (needs permission and a reason; audited)",
        request=RevealSerializer,
        responses={200: RevealOutputSerializer},
        examples=[
            OpenApiExample(
                "Support case", value={"fields": ["full_name", "identities"], "reason": "Ticket #4521: customer call"},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def reveal(self, request, pk=None):
        body = RevealSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        profile = self.get_object()
        values = profile_reveal(
            actor=request.user, profile=profile, fields=body.validated_data["fields"],
            reason=body.validated_data["reason"], request=request, via="api",
        )
        return Response({"id": profile.id, "values": values, "reason": body.validated_data["reason"]})

