"""A working spm.yaml for a sandbox: what `demo` and `sandbox` hand their user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

# Plays and modules docs/coaching.md walks through: each opens a task for the rep's manager.
COACHING: list[dict[str, Any]] = [
    {"play": "behind_pace", "title": "Behind pace", "figure": "pace", "below": "0.8",
     "after": "0.4", "assign": "pipeline",
     "talking_points": ["Which deals can close before the period ends?",
                        "What is stuck, and who can unstick it?"]},
    {"play": "no_recent_win", "title": "No win in 30 days", "figure": "days_since_win",
     "above": "30", "talking_points": ["Review the three most advanced deals together."]},
    {"play": "low_win_rate", "title": "Low win rate", "figure": "win_rate", "below": "0.2",
     "days": 90, "assign": "discovery",
     "talking_points": ["Walk through the last two lost deals: where did they stall?"]},
    {"play": "thin_pipeline", "title": "Thin pipeline", "figure": "pipeline_coverage",
     "below": "3", "after": "0.25", "assign": "pipeline",
     "talking_points": ["Where will next month's pipeline come from?"]},
    {"play": "slow_cycle", "title": "Slow sales cycle", "figure": "cycle_vs_team",
     "above": "2", "talking_points": ["Which step takes longest, and why?"]},
]  # fmt: skip
TRAINING: list[dict[str, Any]] = [
    {"id": "pipeline", "title": "Building pipeline", "addresses": "pipeline_coverage",
     "link": "https://learn.example.com/spm/pipeline", "due_days": 14},
    {"id": "discovery", "title": "Discovery calls that qualify", "addresses": "win_rate",
     "link": "https://learn.example.com/spm/discovery", "due_days": 21},
]  # fmt: skip


def write_sandbox_config(
    directory: Path,
    crm: Mapping[str, Any],
    members: Sequence[str],
    name: str = "spm.yaml",
    team_managers: Mapping[str, str] | None = None,
) -> Path:
    """A plan with every moving part: tiers, a draw, bonuses, a SPIFF, clawbacks, quotas
    from the CRM's forecasts or goals (the plan's quota for managers, who have none),
    a deals-won goal and a team goal on the CRM's teams; recognition, coaching plays and
    training (coaching.md). ``team_managers``: the managers of HubSpot's teams (its teams
    name none; Salesforce's users name theirs)."""
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
        "coaching": COACHING,
        "training": TRAINING,
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
    if team_managers:
        config["team_managers"] = dict(team_managers)
    path = directory / name
    path.write_text(
        "# Written by spm-connector for its sandbox; see docs/ for every setting.\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    return path
