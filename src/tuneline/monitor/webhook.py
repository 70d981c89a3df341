"""Tell someone: POST a drift alert as JSON to a webhook (Slack, Teams, a pager, your own)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

TIMEOUT_S = 10.0


def post_alert(url: str, alert: dict[str, Any]) -> str:
    """POST `alert` with a `text` summary (what Slack and Teams incoming webhooks display) and
    return what happened in a line. A failed delivery is reported, never raised: the alert's
    exit status is what a scheduler acts on."""
    if not url.startswith(("http://", "https://")):
        return f"NOT delivered to {url}: only http:// and https:// webhooks are supported"
    body = {"text": "tuneline drift: " + "; ".join(alert.get("alerts", [])), **alert}
    request = urllib.request.Request(
        url, data=json.dumps(body, default=str).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tuneline-monitor"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            return f"delivered to {url} (HTTP {response.status})"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"NOT delivered to {url}: {exc}"
