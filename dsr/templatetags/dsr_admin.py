from django import template

from dsr.dashboard import request_panel
from governance.links import public_base_url

register = template.Library()


@register.simple_tag(takes_context=True)
def dsr_request_panel(context, obj):
    """Progress, package link and the actions that apply, for a request's admin page."""
    http_request = context["request"]
    return request_panel(request=obj, user=http_request.user, base_url=public_base_url(http_request))
