"""`spm-connector sandbox` runs an emulator standalone and prints what a client needs."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import requests
from hubspot import HubSpot
from simple_salesforce import Salesforce


def test_salesforce_sandbox_command(tmp_path: Path) -> None:
    ca_path = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from connector.cli import main; main()",
            "sandbox",
            "--crm",
            "salesforce",
            "--reps",
            "3",
            "--deals",
            "25",
            "--ca-path",
            str(ca_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        url = re.search(r"running at (https://127\.0\.0\.1:\d+)", output)
        token = re.search(r"export SPM_SALESFORCE_ACCESS_TOKEN=(\S+)", output)
        assert url and token, output
        assert f"CA certificate: {ca_path}" in output and "instance_url:" in output
        session = requests.Session()
        session.trust_env = False
        session.verify = str(ca_path)
        sf = Salesforce(
            instance_url=url.group(1),
            session_id=token.group(1),
            session=session,
            parse_float=Decimal,
        )
        assert sf.query("SELECT COUNT() FROM Opportunity")["totalSize"] == 25
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in remaining


def test_hubspot_sandbox_command() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from connector.cli import main; main()",
            "sandbox",
            "--crm",
            "hubspot",
            "--deals",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        output = "".join(lines)
        url = re.search(r"running at (http://127\.0\.0\.1:\d+)", output)
        token = re.search(r"export SPM_HUBSPOT_ACCESS_TOKEN=(\S+)", output)
        assert url and token, output
        assert "SPM_HUBSPOT_CLIENT_SECRET" in output and "base_url:" in output
        page = HubSpot(access_token=token.group(1), host=url.group(1)).crm.deals.basic_api
        assert len(page.get_page(limit=100).results) == 30
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in remaining
