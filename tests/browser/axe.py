"""axe-core in real Chromium: the accessibility scan the browser tests run on each page state.

axe-core comes from the npm registry (`axe_script`, a session fixture in conftest.py); the
page's CSP forbids inline scripts, so a test injects it in a context with `bypass_csp`.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page


def axe_violations(page: Page, script: Path) -> list[str]:
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=str(script))
    results = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']}: {v['help']} -> "
        + "; ".join(f"{n['target']} {n.get('failureSummary', '')[:160]}" for n in v["nodes"][:4])
        for v in results
    ]


def assert_no_violations(page: Page, script: Path, where: str) -> None:
    found = axe_violations(page, script)
    assert found == [], f"axe violations in {where}:\n" + "\n".join(found)
