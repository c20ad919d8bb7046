"""The HTML report, read by a real browser: headless Chromium (Debian's ``chromium``, installed by
scripts/test.sh) renders a PASS and a FAIL report, and the verdict, the funnel numbers and every FAIL
reason are visible text; the page makes no network request.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest

from common.evidence import Bus, Certification, Check, Evidence, Funnel, Partition
from jobs.closure import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"   # scripts/test.sh installs it
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def evidence(verdict: str, reasons: list[str]) -> Evidence:
    at = datetime(2026, 11, 20, 12, tzinfo=timezone.utc)
    return Evidence(
        run_id="r-report-1", verdict=verdict, reasons=reasons, closed_at=at, attempt=1, closer="pid 1 on test",
        code_version="git:abc", config_digest="d1",
        bus=Bus(topic="ledgerlane.transactions", epoch=1, cluster_id_basis="c-1", cluster_id_now="c-1",
                topic_id_basis="t-1", topic_id_now="t-1", basis_captured_at=at),
        partitions=[Partition(partition=0, basis_start=0, basis_end=5123, earliest_now=0, latest_now=5200,
                              committed=5123 if verdict == "PASS" else 5000, lag=0 if verdict == "PASS" else 123,
                              received=5123, admitted=4987, duplicates=101, quarantined=35)],
        funnel=Funnel(received=5123, admitted=4987, duplicates=101, quarantined=35, decided=4987,
                      decisions_by_outcome={"APPROVE": 4800, "REVIEW": 150, "DECLINE": 37},
                      actions_by_type={"open_case": 150, "block_card": 37}, cases_opened=150, cards_blocked=37),
        certifications=[Certification(product="account_features", table="gold.account_features", version=7,
                                      status="PASS", engine="native")],
        tables=[], streams=[], migrations_head="V005__observed_at_floor",
        checks=[Check(name="caught_up", ok=verdict == "PASS", detail=reasons[0] if reasons else "lag 0")],
        copied=[])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


def visible_text(browser, tmp_path, evidence_: Evidence) -> tuple[str, list[str]]:
    page_file = tmp_path / f"{evidence_.verdict}.html"
    page_file.write_text(report.render(evidence_), encoding="utf-8")
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(page_file.as_uri())
    text = page.inner_text("body")
    page.screenshot(path=str(tmp_path / f"{evidence_.verdict}.png"), full_page=True)
    page.close()
    return text, [url for url in requests if not url.startswith("file://")]


def test_a_pass_report_shows_the_verdict_and_the_funnel(browser, tmp_path):
    text, network = visible_text(browser, tmp_path, evidence("PASS", []))

    assert "PASS" in text and "Why the run failed" not in text
    for figure in ("5123", "4987", "101", "35", "150", "37"):
        assert figure in text
    assert network == []


def test_a_fail_report_puts_every_reason_first_in_plain_words(browser, tmp_path):
    reasons = ["ingest did not reach the basis end offsets: partition 0 lags by 123",
               "topic ledgerlane.transactions was deleted and recreated after the run's basis"]

    text, network = visible_text(browser, tmp_path, evidence("FAIL", reasons))

    assert text.index("FAIL") < text.index("Funnel")
    assert all(reason in text for reason in reasons)
    assert text.index(reasons[1]) < text.index("Funnel")
    assert network == []
