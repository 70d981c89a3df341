"""The HTML drift report and the alert webhook."""

from __future__ import annotations

import importlib.util

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn")

from test_drift import off_topic_window  # noqa: E402

from conftest import webhook_receiver  # noqa: E402
from tuneline.monitor.drift import compare, compare_rates  # noqa: E402
from tuneline.monitor.report import render_drift_html  # noqa: E402
from tuneline.monitor.webhook import post_alert  # noqa: E402


def _shifted_report():
    """40 live prompts on trained topics, 20 on two topics never trained."""
    baseline, live = off_topic_window()
    questions = [f"trained topic question {i}" for i in range(40)] + \
                [f"<b>new</b> topic question {i}" for i in range(20)]
    return compare(baseline, live, seed=0), questions


def test_the_report_shows_the_verdict_each_test_and_the_questions_outside_coverage():
    report, questions = _shifted_report()
    rates = compare_rates({"declined": 0.1}, {"declined": (30, 60)})
    page = render_drift_html(report, rates, "runs/x/evaluate/drift-baseline", questions,
                             report.alerts)
    assert "DRIFT" in page and "NO DRIFT" not in page
    for alert in report.alerts:
        assert alert.split("(")[0].strip() in page
    outside = page.split("outside the training coverage")[1]
    assert "&lt;b&gt;new&lt;/b&gt; topic question" in outside  # escaped, never markup
    assert "<b>new</b>" not in page
    assert "trained topic question" not in outside
    assert "declined" in page and "50.0%" in page and "10.0%" in page
    plots = 2 if importlib.util.find_spec("matplotlib") else 0
    assert page.count('src="data:image/png;base64,') == plots
    assert "http://" not in page and "https://" not in page  # self-contained


def test_without_recorded_text_the_report_says_so_and_shows_no_question():
    report, _ = _shifted_report()
    page = render_drift_html(report, [], "baseline", [None] * report.live, report.alerts)
    assert "Question text was not recorded" in page
    assert "topic question" not in page


def test_the_webhook_receives_the_alerts_and_a_failed_delivery_is_reported_not_raised():
    with webhook_receiver() as (url, received):
        said = post_alert(url, {"alerts": ["MMD 0.1, permutation p = 0.001"], "run": "demo"})
    assert said == f"delivered to {url} (HTTP 200)"
    body = received[-1]
    assert body["text"] == "tuneline drift: MMD 0.1, permutation p = 0.001"
    assert body["run"] == "demo"
    closed = post_alert(url, {"alerts": ["x"]})  # the server is gone
    assert closed.startswith(f"NOT delivered to {url}")
    assert post_alert("file:///etc/passwd", {"alerts": ["x"]}).startswith("NOT delivered")
