"""SMTP that delivers to internationalised addresses (RFC 6531 SMTPUTF8).

Django's SMTP backend writes a non-ASCII local part (``stanisław.wójcik@wp.pl``) as an encoded
word (``=?utf-8?b?…?=@wp.pl``), an address no mail server resolves: the person never receives
their confirmation code. This backend sends such messages with ``SMTPUTF8`` — addresses and the
address headers in UTF-8 — when the server offers it, and fails clearly when it does not. Mail
with ASCII local parts (IDN domains included, sent in punycode) goes the usual way.

    EMAIL_BACKEND=governance.mail.EmailBackend
"""

from __future__ import annotations

import email.policy
import io
import smtplib
from email.generator import BytesGenerator
from email.message import Message
from email.utils import parseaddr

from django.core.mail.backends.smtp import EmailBackend as SmtpBackend

ERR_NO_SMTPUTF8 = ("the mail server does not offer SMTPUTF8 (RFC 6531): a message to an address with "
                   "non-ASCII letters before the @ cannot be delivered through it")
ADDRESS_HEADERS = (("To", "to"), ("Cc", "cc"), ("Reply-To", "reply_to"))


def needs_smtputf8(address: str) -> bool:
    """Whether the address has non-ASCII letters before the @ (a non-ASCII domain has punycode)."""
    local, _sep, _domain = (parseaddr(address)[1] or address).rpartition("@")
    return not local.isascii()


class EmailBackend(SmtpBackend):
    def _send(self, email_message) -> bool:
        recipients = email_message.recipients()
        if not recipients:
            return False
        if not any(needs_smtputf8(a) for a in [*recipients, email_message.from_email]):
            return super()._send(email_message)
        try:
            self.connection.ehlo_or_helo_if_needed()
            if not self.connection.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(ERR_NO_SMTPUTF8)
            message = email_message.message()
            for header, attribute in ADDRESS_HEADERS:
                values = getattr(email_message, attribute)
                if values and header not in email_message.extra_headers:
                    del message[header]
                    # Bypass Django's header encoding: SMTPUTF8 carries the addresses as UTF-8.
                    Message.__setitem__(message, header, ", ".join(values))
            buffer = io.BytesIO()
            BytesGenerator(buffer, policy=email.policy.SMTPUTF8.clone(linesep="\r\n")).flatten(message)
            self.connection.sendmail(parseaddr(email_message.from_email)[1] or email_message.from_email,
                                     [parseaddr(r)[1] or r for r in recipients], buffer.getvalue(),
                                     mail_options=["SMTPUTF8"])
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
