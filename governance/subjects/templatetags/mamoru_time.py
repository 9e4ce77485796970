"""Times as staff read them: in the active time zone, with the zone named.

``{{ value|when }}`` renders ``<time datetime="…UTC ISO…">2026-05-01 10:00 JST</time>``;
``{% current_zone %}`` names the zone times are shown in (``Asia/Tokyo``). The active zone is
the request's (``django.utils.timezone.activate``): a per-user or per-workspace zone, once
activated by a middleware, shows here without template changes.
"""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html

register = template.Library()


@register.filter
def when(value):
    if not isinstance(value, dt.datetime):
        return value if value not in (None, "") else "—"
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    local = timezone.localtime(value)
    return format_html('<time datetime="{}">{} {}</time>', value.astimezone(dt.UTC).isoformat(),
                       date_format(local, "Y-m-d H:i"), local.tzname() or timezone.get_current_timezone_name())


@register.simple_tag
def current_zone() -> str:
    return timezone.get_current_timezone_name()
