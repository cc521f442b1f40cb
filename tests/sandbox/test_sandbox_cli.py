"""`spm-connector sandbox` runs an emulator standalone and prints what a client needs."""

from __future__ import annotations

import os
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
        # It lists its users and leaves a config that works as it is.
        users = sf.query("SELECT Id, Name, Email FROM User WHERE Name != 'SPM Integration'")
        for user in users["records"]:
            assert f"{user['Id']:<20} {user['Name']:<22} {user['Email']}" in output
        config = tmp_path / "spm.yaml"
        assert f"every user a plan member: {config}" in output
        installed = subprocess.run(
            [sys.executable, "-m", "connector.cli", "--config", str(config), "install"],
            env={**os.environ, "SPM_SALESFORCE_ACCESS_TOKEN": token.group(1)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert installed.returncode == 0, installed.stderr
        # The three plan members read the fields; the integration user reads and edits them.
        assert "4 assigned" in installed.stderr
        assert "SPM_Connector_Integration for user" in installed.stderr
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in remaining


def test_hubspot_sandbox_command(tmp_path: Path) -> None:
    (tmp_path / "spm.yaml").write_text("# the admin's own config: never overwritten\n")
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
        cwd=tmp_path,
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
        assert (tmp_path / "spm.yaml").read_text().startswith("# the admin's own config")
        assert f"every user a plan member: {tmp_path / 'spm.sandbox.yaml'}" in output
        assert "members:" in (tmp_path / "spm.sandbox.yaml").read_text()
    finally:
        process.send_signal(signal.SIGINT)
        remaining, _ = process.communicate(timeout=10)
    assert process.returncode == 0 and "stopped" in remaining
