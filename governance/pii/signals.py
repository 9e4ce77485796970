"""Follow profile merges: findings of a merged profile now belong to the survivor."""

from __future__ import annotations


def findings_follow_merge(sender, survivor, merged, actor=None, **kwargs) -> None:
    from governance.pii.models import ScanFinding

    # Findings hold no personal data, so a plain update keeps them attached to the person.
    ScanFinding.objects.filter(profile=merged).update(profile=survivor)
