from __future__ import annotations

import pytest

from audit.models import Outcome
from audit.services import UPDATE, access_record, change_record
from tests.factories import make_profile


@pytest.fixture
def audited_profiles(workspaces, role_users):
    """Two profiles per workspace with reads, a change and a denied attempt by several actors."""
    jp = [make_profile(workspaces[0], locale="ja_JP", seed=i) for i in range(2)]
    eu = [make_profile(workspaces[1], seed=10 + i) for i in range(2)]
    dpo, agent, analyst = role_users["dpo"], role_users["support_agent"], role_users["privacy_analyst"]
    for profile in jp + eu:
        access_record(actor=dpo, obj=profile, fields=["full_name"], reason="ticket 1", via="admin")
    access_record(actor=agent, obj=jp[0], fields=["address"], reason="call", via="api")
    access_record(actor=agent, obj=eu[0], outcome=Outcome.DENIED, via="api")
    change_record(actor=analyst, obj=jp[1], action=UPDATE, fields=["address"], note="moved")
    access_record(actor=analyst, obj=eu[1], fields=["full_name", "birth_date"], via="api")
    return {"jp": jp, "eu": eu}
