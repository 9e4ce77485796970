"""E-mails to the subject (in their language) and to staff, through Django's mail backend."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation

from dsr.models import DataSubjectRequest
from governance.access.roles import dpo_users


def _language(locale: str) -> str:
    return "ja" if (locale or "").lower().startswith("ja") else "en"


def _render(*, template: str, language: str, context: dict) -> tuple[str, str]:
    with translation.override(language):
        text = render_to_string(f"dsr/mail/{template}.txt", context).strip()
    subject, _sep, body = text.partition("\n")
    return subject.strip(), body.strip() + "\n"


def _send(*, template: str, to: list[str], language: str, context: dict) -> None:
    subject, body = _render(template=template, language=language, context=context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to, fail_silently=False)


def _subject_context(request: DataSubjectRequest, context: dict) -> dict:
    return {"request": request, "short_id": str(request.id)[:8], **context}


def mail_subject(*, request: DataSubjectRequest, template: str, **context) -> None:
    """Write to the requester in the request's language."""
    _send(template=template, to=[request.email], language=_language(request.locale),
          context=_subject_context(request, context))


def mail_subject_render(*, request: DataSubjectRequest, template: str, **context) -> dict:
    """Exactly what :func:`mail_subject` would send (subject, body, language), for a preview.

    The same template, context and language: the preview is the e-mail, not a description of it.
    """
    language = _language(request.locale)
    subject, body = _render(template=template, language=language, context=_subject_context(request, context))
    return {"subject": subject, "body": body, "language": language, "from": settings.DEFAULT_FROM_EMAIL}


def staff_language(user) -> str:
    """A staff member's e-mail language (``StaffMailPreference``), else the site's default."""
    from dsr.models import StaffMailPreference

    preference = StaffMailPreference.objects.filter(user=user).first()
    return _language(preference.language if preference else settings.LANGUAGE_CODE)


def mail_staff(*, request: DataSubjectRequest, template: str, **context) -> None:
    """Write to the DPOs (members of the ``dpo`` group with an e-mail address), each in their language."""
    users = dpo_users()
    by_language: dict[str, set[str]] = {}
    for user in users:
        by_language.setdefault(staff_language(user), set()).add(user.email)
    for language, emails in sorted(by_language.items()):
        _send(template=template, to=sorted(emails), language=language,
              context={"request": request, "short_id": str(request.id)[:8], **context})
