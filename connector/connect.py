"""Wiring: validated settings → the adapter, store and engine a command runs with.

The one place that knows which adapter class goes with which ``crm.type``, and
that turns environment secrets into credentials.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from connector.adapters.base import CallBudget, CrmAdapter, MetadataCache
from connector.adapters.hubspot import HubSpotAdapter, HubSpotSettings
from connector.adapters.retry import RetryPolicy
from connector.adapters.salesforce import (
    SalesforceAdapter,
    SalesforceCredentials,
    SalesforceSettings,
)
from connector.config import Config, CrmType, SalesforceCrm, Secrets
from connector.core.currency import Rates
from connector.core.fields import FieldSpec, catalogue
from connector.core.plan_checks import named_deal_columns
from connector.errors import ConfigError
from connector.inputs import read_rates
from connector.sync.links import StatementLinks
from connector.sync.pay_cycle import CloseRules
from connector.sync.run import SyncSettings


def field_specs(config: Config) -> tuple[FieldSpec, ...]:
    crm = config.crm.type.value if config.crm is not None else "salesforce"
    overrides = {key: name for key, name in config.fields.items() if key != "hubspot_rep_object"}
    return catalogue(overrides, crm)


def statement_links(config: Config, secrets: Secrets | None) -> StatementLinks | None:
    """The reps' statement links, when ``SPM_STATEMENT_LINK_SECRET`` and
    ``webhooks.public_url`` are both set."""
    secret = secrets.statement_link_secret if secrets is not None else None
    if secret is None or not config.webhooks.public_url:
        return None
    return StatementLinks(
        secret.get_secret_value(), config.webhooks.public_url, config.pay_cycle.link_days
    )


def sync_settings(config: Config, secrets: Secrets | None = None) -> SyncSettings:
    """The engine's settings; with the secrets, the reps' statement links too."""
    links = statement_links(config, secrets)
    return SyncSettings(
        plans=config.plans,
        currency=config.currency,
        period_kind=config.period,
        timezone=ZoneInfo(config.timezone),
        teams=config.teams,
        lead_to_sale=config.kpis.lead_to_sale,
        links=links,
        rates=_rates(config),
        team_managers=config.team_managers,
        recognition=config.recognition,
        coaching=config.coaching,
        training=config.training,
        crm_rates=(
            config.currency_rates.basis
            if config.currency_rates is not None and config.currency_rates.source == "crm"
            else None
        ),
    )


def _rates(config: Config) -> Rates | None:
    path = config.rates_path()
    if path is None or config.currency_rates is None:
        return None
    return read_rates(path, config.currency_rates.basis)


def close_rules(config: Config) -> CloseRules:
    """What must hold before a period closes (spm.yaml's ``pay_cycle:``)."""
    return CloseRules(config.pay_cycle.approvals, config.pay_cycle.disputes_block_close)


def adapter_for(
    config: Config,
    secrets: Secrets,
    retry: RetryPolicy | None = None,
    cache: MetadataCache | None = None,
    budget: CallBudget | None = None,
) -> CrmAdapter:
    """The configured CRM's adapter; ``budget`` shares the account's API calls with every
    other process using the same store (HubSpot's ten-second window and search limit)."""
    crm = config.crm
    if crm is None:
        raise ConfigError("spm.yaml: crm: is required by install and sync")
    if isinstance(crm, SalesforceCrm):
        return SalesforceAdapter(
            SalesforceSettings(
                instance_url=crm.instance_url,
                api_version=crm.api_version,
                won_stages=crm.won_stages,
                ca_bundle=crm.ca_bundle,
                timeout_s=crm.timeout_s,
                fields=field_specs(config),
                timezone=ZoneInfo(config.timezone),
                payroll_id_field=config.pay_cycle.payroll_id_field,
                deal_fields=named_deal_columns(config.plans, SalesforceAdapter.deal_columns),
                daily_reserve=crm.daily_reserve,
            ),
            SalesforceCredentials(
                access_token=secrets.salesforce_access_token,
                username=secrets.salesforce_username,
                password=secrets.salesforce_password,
                security_token=secrets.salesforce_security_token,
                client_id=secrets.salesforce_client_id,
                client_secret=secrets.salesforce_client_secret,
            ),
            retry=retry,
            cache=cache,
        )
    assert crm.type is CrmType.HUBSPOT
    if secrets.hubspot_access_token is None:
        raise ConfigError(
            "no HubSpot credentials: set SPM_HUBSPOT_ACCESS_TOKEN to a private-app access token"
        )
    return HubSpotAdapter(
        HubSpotSettings(
            base_url=crm.base_url,
            pipelines=crm.pipelines,
            ca_bundle=crm.ca_bundle,
            timeout_s=crm.timeout_s,
            fields=field_specs(config),
            timezone=ZoneInfo(config.timezone),
            rep_object=config.hubspot_rep_object or "users",
            quota_goal=crm.quota_goal,
            payroll_id_property=config.pay_cycle.payroll_id_field,
            deal_properties=named_deal_columns(config.plans, HubSpotAdapter.deal_columns),
            daily_reserve=crm.daily_reserve,
        ),
        secrets.hubspot_access_token,
        retry=retry,
        cache=cache,
        budget=budget,
    )
