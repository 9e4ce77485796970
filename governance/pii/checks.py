"""System checks: models installed (pii.W001) and recognizer settings valid (pii.E001)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register

from governance.pii.engine import missing_models
from governance.pii.recognizers import UnknownRecognizer, recognizers_selected

W001 = "pii.W001"
E001 = "pii.E001"


@register()
def check_spacy_models(app_configs=None, **kwargs):
    problems = []
    for language, package in missing_models().items():
        problems.append(
            Warning(
                f"spaCy model {package!r} for language {language!r} is not installed: the PII "
                "scanner runs its pattern recognizers only, so names and places will not be found.",
                hint=f"Install the package or change MAMORU_PII_SPACY_MODELS[{language!r}].",
                id=W001,
            )
        )
    return problems


@register()
def check_recognizers(app_configs=None, **kwargs):
    try:
        recognizers_selected(getattr(settings, "MAMORU_PII_RECOGNIZERS", None))
    except UnknownRecognizer as exc:
        return [Error(str(exc), hint="Fix MAMORU_PII_RECOGNIZERS.", id=E001)]
    return []
