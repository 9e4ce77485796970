"""Re-wrap every data key under the active (first) master key."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from governance.crypto.envelope import dek_cache, unwrap_key, wrap_key
from governance.crypto.keyring import get_keyring
from governance.crypto.models import DataKey


class Command(BaseCommand):
    help = (
        "Re-wrap every data key (DEK) under the active master key, the first entry of "
        "MAMORU_MASTER_KEYS. Keep the old keys listed after it until this finishes. Works in "
        "committed batches: safe to interrupt (Ctrl-C) and run again; data stays readable "
        "throughout because old master keys still unwrap."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="keys per transaction (default 500)")
        parser.add_argument(
            "--dry-run", action="store_true", help="count the keys that would be re-wrapped and stop"
        )

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        keyring = get_keyring()
        active = keyring.active_id
        pending = DataKey.objects.exclude(kek_id=active).filter(destroyed_at=None)
        total = pending.count()
        self.stdout.write(f"Active master key: {active}. Data keys to re-wrap: {total}.")
        if dry_run or total == 0:
            if total == 0:
                self.stdout.write(self.style.SUCCESS("Nothing to do: every data key uses the active key."))
            return
        done = 0
        started = time.monotonic()
        last_pk = None
        while True:
            with transaction.atomic(using="keystore"):
                batch_qs = pending.order_by("pk")
                if last_pk is not None:
                    batch_qs = batch_qs.filter(pk__gt=last_pk)
                batch = list(batch_qs.select_for_update()[:batch_size])
                if not batch:
                    break
                now = timezone.now()
                for key in batch:
                    raw = unwrap_key(dek_id=key.id, wrapped=bytes(key.wrapped), kek_id=key.kek_id)
                    key.wrapped = wrap_key(dek_id=key.id, raw=raw, kek_id=active)
                    key.kek_id = active
                    key.rotated_at = now
                DataKey.objects.bulk_update(batch, ["wrapped", "kek_id", "rotated_at"])
                last_pk = batch[-1].pk
            for key in batch:
                dek_cache.evict(key.id)
            done += len(batch)
            rate = done / max(time.monotonic() - started, 1e-6)
            self.stdout.write(f"  re-wrapped {done}/{total} ({100 * done / total:.0f}%, {rate:.0f} keys/s)")
        self.stdout.write(self.style.SUCCESS(f"Done: {done} data keys now under master key {active}."))
