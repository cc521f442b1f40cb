"""Plan members (CRM user ids or emails) → CRM user ids. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connector.core.models import CrmUser
from connector.core.plans import Plan
from connector.errors import ConfigError


def resolve(plans: Sequence[Plan], users: Mapping[str, CrmUser]) -> tuple[set[str], list[str]]:
    """(member user ids, problems): emails match case-insensitively, ids exactly."""
    by_email = {user.email.lower(): user.id for user in users.values() if user.email}
    members: set[str] = set()
    problems: list[str] = []
    for index, plan in enumerate(plans):
        for member in plan.members:
            user_id = (
                by_email.get(member.lower())
                if "@" in member
                else (member if member in users else None)
            )
            if user_id is None:
                what = "matches no CRM user" if "@" in member else "is not a CRM user id"
                problems.append(f"plans[{index}].members: {member} {what} (plan {plan.id})")
            else:
                members.add(user_id)
    return members, problems


def resolve_members(plans: Sequence[Plan], users: Mapping[str, CrmUser]) -> set[str]:
    """Plan members as CRM user ids; a member that matches no user is a config error."""
    members, problems = resolve(plans, users)
    if problems:
        raise ConfigError("\n".join(problems))
    return members
