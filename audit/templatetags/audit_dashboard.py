from django import template

from audit.dashboard import dashboard_context

register = template.Library()


@register.simple_tag(takes_context=True)
def dpo_dashboard(context):
    """Build the dashboard panels for the signed-in user (used by the admin home template)."""
    return dashboard_context(user=context["request"].user)


@register.simple_tag(takes_context=True)
def dsr_request_panel(context, obj):
    """Progress, package link and the actions that apply, for a request's admin page."""
    from audit.dashboard import request_panel

    return request_panel(request=obj, user=context["request"].user)
