"""The page's access token never reaches the handheld's log, even at -vv (debug), though the event stream
carries it in its request line."""

import logging
import urllib.request
from pathlib import Path

import pytest
from handheld_helpers import FleetFiles, running_handheld


def test_access_token_is_redacted_from_debug_log(fleet: FleetFiles, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="edge.handheld"), running_handheld(fleet, tmp_path) as (_, server):
        base, token = server.url.split("#token=")
        with urllib.request.urlopen(f"{base}api/state?token={token}") as response:
            assert response.status == 200
    requests = [r.getMessage() for r in caplog.records if r.getMessage().startswith("page ")]
    assert any("GET /api/state?token=<token>" in m for m in requests), requests
    assert token not in caplog.text
