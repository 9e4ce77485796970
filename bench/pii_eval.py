#!/usr/bin/env python
"""Evaluate Mamoru's PII scanner on a labelled Faker corpus (en_US and ja_JP).

Four corpora with ground-truth spans (see bench/pii_corpus.py): English and Japanese free text,
English and Japanese ten-field customer records (with a free-text note that sometimes holds
PII, and 10-digit order numbers as a trap). Prints precision, recall and F1 per entity; a
prediction counts when it overlaps a gold span of the same entity in the same field.

Goals (issue 5): F1 >= 0.9 for e-mail, phone, My Number and postal code on the Japanese corpus.
    .venv/bin/python bench/pii_eval.py            # 1000 records + 300 texts per language
    .venv/bin/python bench/pii_eval.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

JA_GOALS = ("EMAIL_ADDRESS", "PHONE_NUMBER", "JP_MY_NUMBER", "JP_POSTAL_CODE")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records per language (default 1000)")
    parser.add_argument("--texts", type=int, default=300, help="free texts per language (default 300)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="100 records and 50 texts per language")
    parser.add_argument("--plain", action="store_true",
                        help="also score plain Presidio (AnalyzerEngine.analyze per field value / text, "
                        "default recognizers, same spaCy model) on the English corpora")
    parser.add_argument("--threshold", type=float, default=0.4, help="score threshold for plain Presidio")
    parser.add_argument("--json", type=Path, help="also write the metrics to this JSON file")
    return parser.parse_args()


def mamoru_predictions(scanner, samples, *, texts: bool):
    records = [s.record for s in samples]
    if texts:
        found = scanner.scan_texts([r["text"] for r in records])
        return [[("text", f.entity_type, f.start, f.end) for f in fs] for fs in found]
    found = scanner.scan_records(records)
    return [[(f.field_path, f.entity_type, f.start, f.end) for f in fs] for fs in found]


def main() -> int:
    args = parse_args()
    if args.quick:
        args.records, args.texts = 100, 50
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()
    import pii_corpus as corpus

    from governance.pii.scanner import scanner_get

    started = time.perf_counter()
    scanner = scanner_get()
    print(f"scanner loaded in {time.perf_counter() - started:.1f}s")
    sets = {
        "en_texts": (corpus.en_texts(args.texts, args.seed), True, corpus.EN_ENTITIES),
        "en_records": (corpus.en_records(args.records, args.seed), False, corpus.EN_ENTITIES),
        "ja_texts": (corpus.ja_texts(args.texts, args.seed), True, corpus.JA_ENTITIES),
        "ja_records": (corpus.ja_records(args.records, args.seed), False, corpus.JA_ENTITIES),
    }
    results = {}
    for name, (samples, texts, entities) in sets.items():
        scanner.cache_clear()
        predictions = mamoru_predictions(scanner, samples, texts=texts)
        results[name] = corpus.score(samples, predictions, entities)
        print()
        print(corpus.format_report(f"{name} ({len(samples)} samples)", results[name]))
    ja_all = corpus.score(
        sets["ja_texts"][0] + sets["ja_records"][0],
        mamoru_predictions(scanner, sets["ja_texts"][0], texts=True)
        + mamoru_predictions(scanner, sets["ja_records"][0], texts=False),
        corpus.JA_ENTITIES,
    )
    results["ja_all"] = ja_all
    if args.plain:
        from pii import _plain_analyzer

        analyzer = _plain_analyzer()
        for name in ("en_texts", "en_records"):
            samples, _texts, entities = sets[name]
            predictions = [
                [(path, r.entity_type, r.start, r.end)
                 for path, value in s.record.items() if value is not None
                 for r in analyzer.analyze(str(value), language="en", score_threshold=args.threshold)]
                for s in samples
            ]
            results[f"plain_{name}"] = corpus.score(samples, predictions, entities)
            print()
            print(corpus.format_report(f"plain Presidio, {name} (F1 (other) = Mamoru)",
                                       results[f"plain_{name}"], results[name]))
    print()
    print(corpus.format_report("Japanese corpus, texts + records", ja_all))
    print()
    ok = True
    for entity in JA_GOALS:
        f1 = ja_all[entity]["f1"]
        ok &= f1 >= 0.9
        print(f"goal F1 >= 0.9 on Japanese {entity:<16} {f1:.3f} {'ok' if f1 >= 0.9 else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
