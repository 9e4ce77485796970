"""The scanner starts and works with the network unreachable; without models it falls back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from django.core.checks import run_checks
from django.test import override_settings

from governance.pii.engine import engine_build
from governance.pii.scanner import Scanner

ROOT = Path(__file__).resolve().parents[2]

OFFLINE_SCRIPT = r"""
import json, socket

attempts = []

def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network is unreachable (blocked by test)")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

import django
django.setup()
from governance.pii.scanner import scanner_get

scanner = scanner_get()
texts = ["John Smith wrote from john.smith@example.co.uk.", "山田太郎さんのメールはtaro@example.jpです。"]
found = set()
for text, findings in zip(texts, scanner.scan_texts(texts)):
    found |= {(f.entity_type, text[f.start:f.end]) for f in findings}
print(json.dumps({
    "found": sorted(found),
    "attempts": attempts,
}, ensure_ascii=False))
"""


def test_scanner_works_with_network_blocked():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "governance.settings", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    found = {tuple(pair) for pair in result["found"]}
    assert ("EMAIL_ADDRESS", "john.smith@example.co.uk") in found
    assert ("EMAIL_ADDRESS", "taro@example.jp") in found
    assert ("PERSON", "John Smith") in found
    assert ("PERSON", "山田太郎") in found
    assert result["attempts"] == []


@override_settings(MAMORU_PII_SPACY_MODELS={"en": "no_such_spacy_model"})
def test_without_a_model_patterns_still_run_and_check_warns():
    # given no installed model for English
    warnings = [m for m in run_checks() if m.id == "pii.W001"]
    assert warnings and "names and places will not be found" in warnings[0].msg
    # when the scanner is built from that setting
    scanner = Scanner(engine_build())
    assert scanner.engine.nlp_languages == set()
    text = "Mail john@example.com or call 212-555-0100, says John Smith."
    found = {(f.entity_type, text[f.start : f.end]) for f in scanner.scan_text(text)}
    # then the patterns work and names are not found
    assert ("EMAIL_ADDRESS", "john@example.com") in found
    assert ("PHONE_NUMBER", "212-555-0100") in found
    assert not any(entity == "PERSON" for entity, _ in found)
