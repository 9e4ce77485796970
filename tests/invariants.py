"""The product's evidence promises, checked after every test that touched a database.

Whatever a test did — portal, API, admin, a real worker, a browser — when it ends the audit chain
and the consent chain must verify and the stored consent state must equal the state derived from
the events. A test that writes audit or consent data through any entry point is covered without
asking. Tests that play an attacker (they edit or delete sealed rows on purpose) carry
``@pytest.mark.tampers_evidence`` and are exempt.
"""

from __future__ import annotations


def evidence_problems() -> list[str]:
    """Every broken promise about stored evidence, as readable lines (empty when all hold)."""
    from audit.chain import chain_verify as audit_chain_verify
    from consent.chain import chain_verify as consent_chain_verify
    from consent.services import consent_states_rebuild

    problems = [f"audit chain: {p.message}" for p in audit_chain_verify()]
    problems += [f"consent chain: {p.message}" for p in consent_chain_verify()]
    report = consent_states_rebuild(fix=False)
    problems += [f"consent state missing for profile={k[0]} purpose={k[1]}" for k in report.missing]
    problems += [f"consent state without events: profile={k[0]} purpose={k[1]}" for k in report.extra]
    problems += [
        f"consent state differs from events: profile={k[0]} purpose={k[1]} fields={','.join(f)}"
        for k, f in report.different
    ]
    return problems
