from django import template

from dsr.dashboard import request_panel

register = template.Library()


@register.simple_tag(takes_context=True)
def dsr_request_panel(context, obj):
    """Progress, package link and the actions that apply, for a request's admin page."""
    return request_panel(request=obj, user=context["request"].user)
