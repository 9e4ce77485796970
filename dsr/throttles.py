"""The limits on public DSR endpoints (portal and API), counted by governance.access.throttling.

* per client address: portal submissions (``MAMORU_PORTAL_SUBMITS_PER_HOUR``, 10/hour), portal
  code entries (``MAMORU_PORTAL_VERIFY_PER_10MIN``, 20 per 10 minutes), anonymous calls to the
  DSR API — submit, verify, status together (``MAMORU_DSR_API_PER_HOUR``, 60/hour);
* per mailbox (``victim+1@`` is ``victim@``), whichever client asks: confirmation codes e-mailed
  (``MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR``, 5/hour, portal and API together), so nobody can flood
  a mailbox from many addresses.
"""

from __future__ import annotations

from django.conf import settings

from governance.access.throttling import ClientRateThrottle, Rate, client_ip, throttle_hit
from governance.subjects.identities import email_mailbox_key

SCOPE_PORTAL_SUBMIT = "portal-submit"
SCOPE_PORTAL_VERIFY = "portal-verify"
SCOPE_API = "dsr-api"
SCOPE_CODE_MAIL = "dsr-code-mail"

ERR_CODE_MAIL = "Too many confirmation codes were e-mailed to this address; retry in {seconds} s."


def portal_submit_rate() -> Rate:
    return Rate.per_hour(settings.MAMORU_PORTAL_SUBMITS_PER_HOUR)


def portal_verify_rate() -> Rate:
    return Rate.per_minutes(settings.MAMORU_PORTAL_VERIFY_PER_10MIN, 10)


def api_rate() -> Rate:
    return Rate.per_hour(settings.MAMORU_DSR_API_PER_HOUR)


def code_mail_rate() -> Rate:
    return Rate.per_hour(settings.MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR)


def portal_submit_throttle(*, request) -> None:
    throttle_hit(scope=SCOPE_PORTAL_SUBMIT, value=client_ip(request), rate=portal_submit_rate())


def portal_verify_throttle(*, request) -> None:
    throttle_hit(scope=SCOPE_PORTAL_VERIFY, value=client_ip(request), rate=portal_verify_rate())


def code_mail_throttle(*, email: str) -> None:
    """Count one confirmation code about to be e-mailed to ``email``, per mailbox
    (:func:`~governance.subjects.identities.email_mailbox_key`): case, width, IDN spelling, a
    ``+tag`` sub-address and Gmail's dots do not make another mailbox. Only the count is keyed so;
    the address is used and stored as given."""
    throttle_hit(scope=SCOPE_CODE_MAIL, value=email_mailbox_key(email), rate=code_mail_rate(), detail=ERR_CODE_MAIL)


class DsrApiThrottle(ClientRateThrottle):
    """Anonymous calls to the DSR API, per client address."""

    scope = SCOPE_API

    def rate(self) -> Rate:
        return api_rate()
