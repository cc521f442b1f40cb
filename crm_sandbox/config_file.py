"""A working spm.yaml for a sandbox: what `demo` and `sandbox` hand their user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def write_sandbox_config(
    directory: Path, crm: Mapping[str, Any], members: Sequence[str], name: str = "spm.yaml"
) -> Path:
    """A plan with every moving part: tiers, a draw, bonuses, a SPIFF, clawbacks, quotas
    from the CRM's forecasts or goals (the plan's quota for managers, who have none),
    a deals-won goal and a team goal on the CRM's teams; and recognition (coaching.md)."""
    config = {
        "currency": "USD",
        "period": "month",
        "timezone": "UTC",
        "crm": dict(crm),
        "store": f"sqlite:///{directory / 'spm.db'}",
        "teams": "crm",
        "recognition": [
            {"award": "first_win"},
            {"award": "personal_best"},
            {"award": "top_of_period", "title": "Rep of the month"},
            {"award": "club_pace", "at": "1.0", "months_left": 3},
            {"award": "streak", "periods": 3},
        ],
        "plans": [
            {
                "id": "ae-2026",
                "name": "Account Executives 2026",
                "start": "2026-01-01",
                "end": "2027-12-31",
                "members": list(members),
                "quota": "150000",
                "quota_source": "crm",
                "commission": {
                    "method": "marginal",
                    "tiers_on": "attainment",
                    "tiers": [
                        {"up_to": "1.0", "rate": "0.08"},
                        {"up_to": "1.5", "rate": "0.12"},
                        {"rate": "0.15"},
                    ],
                },
                "draw": {"type": "recoverable", "amount": "2000", "periods": 3},
                "goals": [
                    {"metric": "deals_won", "target": "3"},
                    {"metric": "revenue", "team": True, "target": "400000"},
                ],
                "bonuses": [
                    {"at": "1.0", "amount": "500"},
                    {"goal": "deals_won", "at": "1.0", "amount": "200"},
                    {"goal": "team_revenue", "at": "1.0", "amount": "750"},
                ],
                "spiffs": [{"name": "new-logo", "when": {"type": "New Business"}, "amount": "100"}],
                "clawback": {"window_days": 180},
            }
        ],
    }
    path = directory / name
    path.write_text(
        "# Written by spm-connector for its sandbox; see docs/ for every setting.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path
