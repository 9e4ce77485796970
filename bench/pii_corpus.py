"""Labelled PII corpus for ``bench/pii_eval.py`` and ``bench/pii.py`` (Faker en_US and ja_JP).

Every sample is a record (dict) plus its ground truth: ``(field_path, entity, start, end)``
spans. Free-text samples are records with a single ``text`` field. Generated values are
synthetic (Faker, random digits with valid check digits); nothing here is real personal data.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from faker import Faker

EN_ENTITIES = ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS")
JA_ENTITIES = ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "JP_MY_NUMBER", "JP_POSTAL_CODE")
FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")

Span = tuple[str, str, int, int]  # field_path, entity, start, end


@dataclass
class Sample:
    record: dict
    spans: list[Span] = field(default_factory=list)


class TextBuilder:
    """Concatenate literal text and labelled slots, keeping the spans."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[str, int, int]] = []

    def add(self, text: str, entity: str | None = None) -> TextBuilder:
        if entity:
            self.spans.append((entity, self.length, self.length + len(text)))
        self.parts.append(text)
        self.length += len(text)
        return self

    def text(self) -> str:
        return "".join(self.parts)


def my_number(rng: random.Random) -> str:
    body = [rng.randint(0, 9) for _ in range(11)]
    total = sum(body[11 - n] * (n + 1 if n <= 6 else n - 5) for n in range(1, 12))
    remainder = total % 11
    check = 0 if remainder <= 1 else 11 - remainder
    return "".join(map(str, body)) + str(check)


def jp_phone(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        number = f"0{rng.choice('789')}0-{rng.randint(0, 9999):04d}-{rng.randint(0, 9999):04d}"
    elif kind < 0.75:
        area = rng.choice(["03", "06", "045", "052", "011", "092", "0466"])
        middle = rng.randint(10 ** (5 - len(area)), 10 ** (6 - len(area)) - 1)
        number = f"{area}-{middle}-{rng.randint(0, 9999):04d}"
    elif kind < 0.85:
        number = f"0120-{rng.randint(100, 999)}-{rng.randint(100, 999)}"
    else:
        number = f"0{rng.choice('789')}0{rng.randint(0, 99999999):08d}"
    if rng.random() < 0.15:
        number = number.translate(FULLWIDTH)
    return number


def order_number(rng: random.Random) -> str:
    return str(rng.randint(10**9, 10**10 - 1))


def _en_note(fake: Faker, rng: random.Random) -> TextBuilder:
    b = TextBuilder()
    choice = rng.randrange(7)
    if choice == 0:
        b.add(rng.choice(["Customer asked about delivery times.", "Gift wrap requested.",
                          "Repeat buyer, prefers morning delivery.", "No notes."]))
    elif choice == 1:
        b.add("Please call ").add(fake.name(), "PERSON").add(" back at ").add(fake.phone_number(), "PHONE_NUMBER").add(".")
    elif choice == 2:
        b.add("Paid with card ").add(fake.credit_card_number(), "CREDIT_CARD").add(", order ").add(order_number(rng)).add(".")
    elif choice == 3:
        b.add("Forward the invoice to ").add(fake.email(), "EMAIL_ADDRESS").add(" today.")
    elif choice == 4:
        b.add("SSN on file: ").add(fake.ssn(), "US_SSN").add(".")
    elif choice == 5:
        b.add("Login from ").add(fake.ipv4_public(), "IP_ADDRESS").add(" was blocked.")
    else:
        b.add(fake.name(), "PERSON").add(" moved to ").add(fake.city(), "LOCATION").add(" last month.")
    return b


def _ja_note(fake: Faker, rng: random.Random) -> TextBuilder:
    b = TextBuilder()
    choice = rng.randrange(6)
    if choice == 0:
        b.add(rng.choice(["配送時間の指定あり。", "ギフト包装希望。", "特になし。", "午前中の配達を希望。"]))
    elif choice == 1:
        b.add("折り返しは").add(jp_phone(rng), "PHONE_NUMBER").add("までお願いします。")
    elif choice == 2:
        b.add("請求書は").add(fake.email(), "EMAIL_ADDRESS").add("に送付してください。")
    elif choice == 3:
        b.add("マイナンバー：").add(my_number(rng), "JP_MY_NUMBER").add("を確認済み。")
    elif choice == 4:
        b.add("送付先は〒").add(fake.postcode(), "JP_POSTAL_CODE").add(" ").add(fake.address(), "LOCATION").add("です。")
    else:
        b.add(fake.last_name() + fake.first_name(), "PERSON").add("様より注文番号").add(order_number(rng)).add("の問い合わせ。")
    return b


def _record(values: list[tuple[str, object, str | None]], note_field: str, note: TextBuilder) -> Sample:
    record: dict = {}
    spans: list[Span] = []
    for name, value, entity in values:
        record[name] = value
        if entity and isinstance(value, str):
            spans.append((name, entity, 0, len(value)))
    record[note_field] = note.text()
    spans.extend((note_field, entity, start, end) for entity, start, end in note.spans)
    return Sample(record, spans)


def en_records(n: int, seed: int = 7) -> list[Sample]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        address = fake.address().replace("\n", ", ")
        card = fake.credit_card_number() if rng.random() < 0.6 else None
        samples.append(_record([
            ("id", 100000 + i, None),
            ("customer_name", fake.name(), "PERSON"),
            ("email", fake.email(), "EMAIL_ADDRESS"),
            ("phone", fake.phone_number(), "PHONE_NUMBER"),
            ("address", address, "LOCATION"),
            ("card_number", card, "CREDIT_CARD"),
            ("order_no", order_number(rng), None),
            ("created_at", fake.iso8601(), None),
            ("active", rng.random() < 0.8, None),
        ], "notes", _en_note(fake, rng)))
    return samples


def ja_records(n: int, seed: int = 11) -> list[Sample]:
    fake = Faker("ja_JP")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    samples = []
    for i in range(n):
        number = my_number(rng)
        if rng.random() < 0.3:
            number = f"{number[:4]} {number[4:8]} {number[8:]}"
        samples.append(_record([
            ("id", 200000 + i, None),
            ("氏名", fake.name(), "PERSON"),
            ("email", fake.email(), "EMAIL_ADDRESS"),
            ("電話番号", jp_phone(rng), "PHONE_NUMBER"),
            ("郵便番号", fake.postcode(), "JP_POSTAL_CODE"),
            ("住所", fake.address(), "LOCATION"),
            ("my_number", number, "JP_MY_NUMBER"),
            ("order_no", order_number(rng), None),
            ("created_at", fake.iso8601(), None),
        ], "備考", _ja_note(fake, rng)))
    return samples


def en_texts(n: int, seed: int = 13) -> list[Sample]:
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        b = TextBuilder()
        b.add("Hi, this is ").add(fake.name(), "PERSON").add(". ")
        pieces = [
            lambda b: b.add("My email is ").add(fake.email(), "EMAIL_ADDRESS").add(". "),
            lambda b: b.add("You can reach me at ").add(fake.phone_number(), "PHONE_NUMBER").add(". "),
            lambda b: b.add("I live in ").add(fake.city(), "LOCATION").add(". "),
            lambda b: b.add("Please charge my card ").add(fake.credit_card_number(), "CREDIT_CARD").add(". "),
            lambda b: b.add("My order ").add(order_number(rng)).add(" has not arrived. "),
            lambda b: b.add("My SSN is ").add(fake.ssn(), "US_SSN").add(". "),
        ]
        for piece in rng.sample(pieces, 3):
            piece(b)
        b.add("Thanks!")
        samples.append(Sample({"text": b.text()}, [("text", e, s, t) for e, s, t in b.spans]))
    return samples


def ja_texts(n: int, seed: int = 17) -> list[Sample]:
    fake = Faker("ja_JP")
    fake.seed_instance(seed)
    rng = random.Random(seed)
    samples = []
    for _ in range(n):
        b = TextBuilder()
        b.add(fake.last_name() + fake.first_name(), "PERSON").add("と申します。")
        pieces = [
            lambda b: b.add("メールアドレスは").add(fake.email(), "EMAIL_ADDRESS").add("です。"),
            lambda b: b.add("電話番号は").add(jp_phone(rng), "PHONE_NUMBER").add("です。"),
            lambda b: b.add("住所は〒").add(fake.postcode(), "JP_POSTAL_CODE").add(" ").add(fake.address(), "LOCATION").add("です。"),
            lambda b: b.add("マイナンバーは").add(my_number(rng), "JP_MY_NUMBER").add("です。"),
            lambda b: b.add("郵便番号").add(fake.postcode(), "JP_POSTAL_CODE").add("宛にお送りください。"),
            lambda b: b.add("注文番号").add(order_number(rng)).add("が届きません。"),
        ]
        for piece in rng.sample(pieces, 3):
            piece(b)
        samples.append(Sample({"text": b.text()}, [("text", e, s, t) for e, s, t in b.spans]))
    return samples


# --- scoring --------------------------------------------------------------------------------

Prediction = tuple[str, str, int, int]  # field_path, entity, start, end


def score(
    samples: list[Sample], predictions: list[Iterable[Prediction]], entities: Iterable[str]
) -> dict[str, dict[str, float]]:
    """Per-entity precision, recall and F1; a prediction matches a gold span of the same entity
    in the same field when they overlap (each gold span matches once)."""
    wanted = set(entities)
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for sample, predicted in zip(samples, predictions, strict=True):
        gold = defaultdict(list)
        for path, entity, start, end in sample.spans:
            if entity in wanted:
                gold[(path, entity)].append([start, end, False])
        for path, entity, start, end in predicted:
            if entity not in wanted:
                continue
            for span in gold.get((path, entity), []):
                if not span[2] and start < span[1] and end > span[0]:
                    span[2] = True
                    tp[entity] += 1
                    break
            else:
                fp[entity] += 1
        for (_path, entity), spans in gold.items():
            fn[entity] += sum(1 for span in spans if not span[2])
    report = {}
    for entity in sorted(wanted):
        p = tp[entity] / (tp[entity] + fp[entity]) if tp[entity] + fp[entity] else 0.0
        r = tp[entity] / (tp[entity] + fn[entity]) if tp[entity] + fn[entity] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        report[entity] = {"precision": p, "recall": r, "f1": f1, "support": tp[entity] + fn[entity],
                          "tp": tp[entity], "fp": fp[entity], "fn": fn[entity]}
    return report


def format_report(title: str, report: dict, other: dict | None = None) -> str:
    lines = [f"{title}", f"{'entity':<16}{'P':>7}{'R':>7}{'F1':>7}{'support':>9}"
             + (f"{'F1 (other)':>12}" if other else "")]
    for entity, m in report.items():
        if not m["support"] and not m["fp"]:
            continue
        extra = f"{other[entity]['f1']:>12.3f}" if other and entity in other else ""
        lines.append(f"{entity:<16}{m['precision']:>7.3f}{m['recall']:>7.3f}{m['f1']:>7.3f}{m['support']:>9}{extra}")
    return "\n".join(lines)


Runner = Callable[[list[dict]], list[list[Prediction]]]
