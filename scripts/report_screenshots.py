"""Screenshots of real run reports for the docs: docs/report-pass.png and docs/report-fail.png.

    .venv/bin/python scripts/report_screenshots.py PASS_REPORT.html FAIL_REPORT.html

Take the reports a demo printed (``bash scripts/demo.sh`` names each run's report). Headless Chromium
(Debian's ``chromium``, installed by ``LEDGERLANE_WITH_BROWSER=1 scripts/setup.sh``) renders each page.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not all(Path(p).is_file() for p in argv):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        for source, name in zip(argv, ("report-pass.png", "report-fail.png")):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(Path(source).resolve().as_uri())
            page.screenshot(path=str(DOCS / name), full_page=True)
            page.close()
            print(f"wrote {DOCS / name}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
