"""axe-core in the browser tests: no serious or critical accessibility violation on a page.

axe-core comes from npm, for tests only (tests/e2e/package.json; ``make browser-deps`` runs
``npm ci`` there). It is evaluated through the DevTools protocol, which the pages'
Content-Security-Policy does not apply to, so the pages keep their real policy during the check.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import in_ci

AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")


def axe_source() -> str:
    if not AXE.exists():
        message = f"axe-core not installed at {AXE} (make browser-deps: npm ci in tests/e2e)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return AXE.read_text(encoding="utf-8")


def axe_violations(page, *, impacts: tuple[str, ...] = BLOCKING) -> list[dict]:
    """Run axe-core (WCAG 2.x A/AA rules) on the page as it is now; the violations of ``impacts``."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    result = page.evaluate("""async () => {
        const r = await window.axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => n.target.join(' '))}));
    }""")
    return [v for v in result if v["impact"] in impacts]


def assert_accessible(page, label: str = "") -> None:
    violations = axe_violations(page)
    assert not violations, f"axe-core on {label or page.url}:\n" + json.dumps(violations, indent=1)
