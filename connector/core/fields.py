"""The custom CRM fields we own (crm-fields.md), keyed by meaning.

Each field has a stable *key* (``commission``, ``payout_ytd``, …) used by the
sync engine and the store; the CRM-specific names and types live here and can
be renamed in spm.yaml under ``fields:`` (by key).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum


class RecordKind(StrEnum):
    DEAL = "deal"
    REP = "rep"


class ValueKind(StrEnum):
    MONEY = "money"  # Decimal, two places
    FRACTION = "fraction"  # Decimal fraction: 0.125 = 12.5 %
    TEXT = "text"
    DATETIME = "datetime"
    NUMBER = "number"  # Decimal, ``scale`` places: days, coverage ratios


@dataclass(frozen=True)
class FieldSpec:
    key: str
    record: RecordKind
    value: ValueKind
    label: str
    description: str
    salesforce: str
    hubspot: str
    # Salesforce Percent(7,4) for a deal's rate, Percent(7,2) for attainment.
    percent_scale: int = 2
    # Places of a NUMBER field (Salesforce Number(14, scale)).
    scale: int = 4
    # Characters of a TEXT field (Salesforce Text(length)).
    length: int = 10


_DEAL, _REP = RecordKind.DEAL, RecordKind.REP
_M, _F, _T, _DT = ValueKind.MONEY, ValueKind.FRACTION, ValueKind.TEXT, ValueKind.DATETIME
_N = ValueKind.NUMBER


def _rep(key: str, value: ValueKind, label: str, description: str, **options: int) -> FieldSpec:
    """A rep-level field named after its key: ``SPM_<Key>__c`` / ``spm_<key>``."""
    title = "_".join(part.capitalize() for part in key.split("_"))
    return FieldSpec(
        key, _REP, value, label, description, f"SPM_{title}__c", f"spm_{key}", **options
    )


CATALOGUE: tuple[FieldSpec, ...] = (
    FieldSpec(
        "commission",
        _DEAL,
        _M,
        "SPM Commission",
        "Commission this deal earned (all split reps together)",
        "SPM_Commission__c",
        "spm_commission",
    ),
    FieldSpec(
        "commission_rate",
        _DEAL,
        _F,
        "SPM Commission Rate",
        "Effective commission rate: commission divided by credit",
        "SPM_Commission_Rate__c",
        "spm_commission_rate",
        percent_scale=4,
    ),
    FieldSpec(
        "commission_period",
        _DEAL,
        _T,
        "SPM Commission Period",
        "Period the deal was credited in",
        "SPM_Commission_Period__c",
        "spm_commission_period",
    ),
    FieldSpec(
        "clawback",
        _DEAL,
        _M,
        "SPM Clawback",
        "Commission clawed back (0 or negative)",
        "SPM_Clawback__c",
        "spm_clawback",
    ),
    FieldSpec(
        "estimated_commission",
        _DEAL,
        _M,
        "SPM Estimated Commission",
        "What this open deal would pay its reps if it closed today at its amount",
        "SPM_Estimated_Commission__c",
        "spm_estimated_commission",
    ),
    FieldSpec(
        "period", _REP, _T, "SPM Period", "Current commission period", "SPM_Period__c", "spm_period"
    ),
    FieldSpec(
        "quota", _REP, _M, "SPM Quota", "Quota for the current period", "SPM_Quota__c", "spm_quota"
    ),
    FieldSpec(
        "bookings",
        _REP,
        _M,
        "SPM Bookings",
        "Bookings credited this period",
        "SPM_Bookings__c",
        "spm_bookings",
    ),
    FieldSpec(
        "attainment",
        _REP,
        _F,
        "SPM Attainment",
        "Quota attainment this period",
        "SPM_Attainment__c",
        "spm_attainment",
    ),
    FieldSpec(
        "earnings",
        _REP,
        _M,
        "SPM Earnings",
        "Commission, SPIFFs, bonuses, overrides, clawbacks and adjustments this period",
        "SPM_Earnings__c",
        "spm_earnings",
    ),
    _rep(
        "adjustments",
        _M,
        "SPM Adjustments",
        "Adjustments this period: late changes to closed periods, and manual ones",
    ),
    _rep(
        "overrides",
        _M,
        "SPM Overrides",
        "Manager overrides this period: a share of the team's credited bookings",
    ),
    _rep(
        "held_back",
        _M,
        "SPM Held Back",
        "Commission held back, to be released at the quarter's or year's end",
    ),
    _rep("period_status", _T, "SPM Period Status", "preliminary, closed or paid", length=12),
    _rep(
        "statement_link",
        _T,
        "SPM Statement Link",
        "The rep's own link to their statements (personal: do not share)",
        length=255,
    ),
    FieldSpec(
        "draw_paid",
        _REP,
        _M,
        "SPM Draw Paid",
        "Draw paid this period",
        "SPM_Draw_Paid__c",
        "spm_draw_paid",
    ),
    FieldSpec(
        "draw_recovered",
        _REP,
        _M,
        "SPM Draw Recovered",
        "Draw recovered this period",
        "SPM_Draw_Recovered__c",
        "spm_draw_recovered",
    ),
    FieldSpec(
        "draw_balance",
        _REP,
        _M,
        "SPM Draw Balance",
        "Draw balance owed",
        "SPM_Draw_Balance__c",
        "spm_draw_balance",
    ),
    FieldSpec(
        "payout", _REP, _M, "SPM Payout", "Payout this period", "SPM_Payout__c", "spm_payout"
    ),
    FieldSpec(
        "payout_ytd",
        _REP,
        _M,
        "SPM Payout YTD",
        "Payout year to date",
        "SPM_Payout_YTD__c",
        "spm_payout_ytd",
    ),
    FieldSpec(
        "updated_at",
        _REP,
        _DT,
        "SPM Updated At",
        "When these figures were computed",
        "SPM_Updated_At__c",
        "spm_updated_at",
    ),
    # Goals beyond the revenue quota: attainment of the plan's goal of each metric.
    _rep(
        "deals_won_attainment",
        _F,
        "SPM Deals Won Attainment",
        "Deals won this period against the deals-won goal",
    ),
    _rep(
        "new_customers_attainment",
        _F,
        "SPM New Customers Attainment",
        "New customers won this period against the new-customers goal",
    ),
    _rep(
        "team_attainment",
        _F,
        "SPM Team Attainment",
        "The team's bookings this period against the team's revenue goal",
    ),
    _rep(
        "team_deals_won_attainment",
        _F,
        "SPM Team Deals Won Attainment",
        "The team's deals won this period against its deals-won goal",
    ),
    _rep(
        "team_new_customers_attainment",
        _F,
        "SPM Team New Customers Attainment",
        "The team's new customers this period against its new-customers goal",
    ),
    # SMART goals: each goal's pace, like the revenue pace (1.0000: on pace for the deadline).
    _rep("deals_won_pace", _F, "SPM Deals Won Pace", "Deals won against the goal's share so far"),
    _rep(
        "new_customers_pace",
        _F,
        "SPM New Customers Pace",
        "New customers won against the goal's share so far",
    ),
    _rep("team_pace", _F, "SPM Team Pace", "The team's bookings against its goal's share so far"),
    _rep(
        "team_deals_won_pace",
        _F,
        "SPM Team Deals Won Pace",
        "The team's deals won against its goal's share so far",
    ),
    _rep(
        "team_new_customers_pace",
        _F,
        "SPM Team New Customers Pace",
        "The team's new customers against its goal's share so far",
    ),
    # Recognition: the rep's latest award and how many they hold (coaching.md).
    _rep("latest_award", _T, "SPM Latest Award", "The rep's latest award, and why", length=255),
    _rep("award_count", _N, "SPM Award Count", "How many awards the rep holds", scale=0),
    # The KPIs managers coach on, for the current period.
    _rep("win_rate", _F, "SPM Win Rate", "Deals won out of deals closed this period"),
    _rep("average_deal_size", _M, "SPM Average Deal Size", "Bookings per deal won this period"),
    _rep(
        "sales_cycle_days",
        _N,
        "SPM Sales Cycle Days",
        "Mean days from creation to close of the deals won this period",
        scale=1,
    ),
    _rep(
        "pipeline_coverage",
        _N,
        "SPM Pipeline Coverage",
        "Open pipeline closing this period divided by the quota still to book",
    ),
    _rep("pace", _F, "SPM Pace", "Attainment against the share of the period gone by"),
    _rep(
        "to_next_tier",
        _M,
        "SPM To Next Tier",
        "Bookings still needed before the next commission tier's rate",
    ),
    _rep(
        "lead_to_sale",
        _F,
        "SPM Lead To Sale",
        "Leads created this period that have converted to a sale",
    ),
)

# Which rep field shows the attainment of a plan's goal of each (metric, team?).
GOAL_FIELDS = {
    ("deals_won", False): "deals_won_attainment",
    ("new_customers", False): "new_customers_attainment",
    ("revenue", True): "team_attainment",
    ("deals_won", True): "team_deals_won_attainment",
    ("new_customers", True): "team_new_customers_attainment",
}
# And which shows its pace.
GOAL_PACE_FIELDS = {
    ("deals_won", False): "deals_won_pace",
    ("new_customers", False): "new_customers_pace",
    ("revenue", True): "team_pace",
    ("deals_won", True): "team_deals_won_pace",
    ("new_customers", True): "team_new_customers_pace",
}

KEYS = frozenset(spec.key for spec in CATALOGUE)


def catalogue(
    overrides: Mapping[str, str] | None = None, crm: str = "salesforce"
) -> tuple[FieldSpec, ...]:
    """The field specs with spm.yaml's ``fields:`` renames applied for ``crm``."""
    if not overrides:
        return CATALOGUE
    renamed: list[FieldSpec] = []
    for spec in CATALOGUE:
        name = overrides.get(spec.key)
        if name is None:
            renamed.append(spec)
        elif crm == "salesforce":
            renamed.append(replace(spec, salesforce=name))
        else:
            renamed.append(replace(spec, hubspot=name))
    return tuple(renamed)


# What the engine reads from the CRM: our writes must never land there.
HUBSPOT_DEAL_INPUTS = (
    "dealname",
    "amount",
    "closedate",
    "dealstage",
    "pipeline",
    "hubspot_owner_id",
    "hs_lastmodifieddate",
    "createdate",
    "dealtype",
    "hs_is_closed_won",
    "hs_is_closed",
    "deal_currency_code",
)
HUBSPOT_REP_INPUTS = ("hs_email", "hs_internal_user_id")

# A Salesforce custom field's API name: letters, digits and single underscores,
# starting with a letter, ending in __c (optionally behind a namespace prefix).
_SALESFORCE_CUSTOM = re.compile(
    r"^(?:[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__)?[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*__c$"
)
# A HubSpot property's internal name: lower-case letters, digits and underscores.
_HUBSPOT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,99}$")


def target_problems(overrides: Mapping[str, str], crm: str) -> list[str]:
    """Why ``fields:`` renames may not be used for ``crm``: one message per bad target.

    We write only fields of our own: never a standard field (an opportunity's
    Amount, a deal's amount) and never one the engine reads as input, or a sync
    would overwrite the customer's data and compute commission on commission.
    """
    problems: list[str] = []
    seen: dict[str, str] = {}
    for key, name in overrides.items():
        where = f"fields.{key}"
        if crm == "salesforce":
            if not _SALESFORCE_CUSTOM.match(name) or len(name) > 43:
                problems.append(
                    f"{where}: {name!r} is not a Salesforce custom field name (letters, digits "
                    "and single underscores, ending in __c): spm-connector writes only fields "
                    "of its own, never standard ones"
                )
        else:
            if not _HUBSPOT_NAME.match(name):
                problems.append(
                    f"{where}: {name!r} is not a HubSpot property name (lower-case letters, "
                    "digits and underscores)"
                )
            elif (
                name in HUBSPOT_DEAL_INPUTS or name in HUBSPOT_REP_INPUTS or name.startswith("hs_")
            ):
                problems.append(
                    f"{where}: {name!r} is a HubSpot property spm-connector reads (or one of "
                    "HubSpot's own hs_ properties); choose a name of its own, like spm_" + key
                )
        first = seen.setdefault(name.lower(), key)
        if first != key:
            problems.append(f"{where}: {name!r} is already the target of fields.{first}")
    return problems
