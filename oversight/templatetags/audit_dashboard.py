from django import template

from oversight.dashboard import dashboard_context

register = template.Library()


@register.simple_tag(takes_context=True)
def dpo_dashboard(context):
    """Build the dashboard panels for the signed-in user (used by the admin home template)."""
    return dashboard_context(user=context["request"].user)
