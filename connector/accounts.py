"""A deployment of many CRM accounts: one folder per Salesforce org or HubSpot portal.

    accounts/
      deployment.yaml      # optional: webhooks: {public_url, trusted_proxies, max_body_bytes}
      acme/spm.yaml        # an ordinary config: its CRM, plans, fields, schedule, store
      acme/.env            # its own credentials
      globex/spm.yaml
      globex/.env

Each account is exactly what ``spm-connector --config accounts/acme/spm.yaml …``
reads by hand, so a sync run from a shell opens the very store its workers use.
Its secrets come from its own ``.env`` only: a token in the process's environment
would be every account's at once, so one there is refused rather than guessed at.
Two accounts may not share a store (on PostgreSQL, ``?schema=NAME`` gives each its
own schema in one database), and every store path must be absolute, so it is the
same store wherever a command runs from.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from connector.config import (
    STORE_ENV,
    Config,
    CrmType,
    DeploymentSettings,
    HubspotCrm,
    Secrets,
    load_config,
    load_deployment_settings,
    load_secrets,
)
from connector.errors import ConfigError

DEPLOYMENT_FILE = "deployment.yaml"
ACCOUNT_FILE = "spm.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# The environment variables that are one account's alone.
_PER_ACCOUNT = (*(f"SPM_{name.upper()}" for name in Secrets.model_fields), STORE_ENV)


@dataclass(frozen=True)
class Account:
    """One CRM account of a deployment: its folder's name, config, secrets and store."""

    name: str
    config: Config
    secrets: Secrets
    store_url: str

    @property
    def crm(self) -> CrmType | None:
        return self.config.crm.type if self.config.crm is not None else None

    @property
    def portal_id(self) -> str | None:
        """A HubSpot account's configured portal id (else: the one its first sync records)."""
        crm = self.config.crm
        if isinstance(crm, HubspotCrm) and crm.portal_id is not None:
            return str(crm.portal_id)
        return None

    @property
    def org_id(self) -> str | None:
        """A Salesforce account's org id, in the 15-character form its messages carry."""
        org = self.secrets.salesforce_org_id
        return org.strip()[:15] if org and self.crm is CrmType.SALESFORCE else None


@dataclass(frozen=True)
class Deployment:
    folder: Path
    settings: DeploymentSettings
    accounts: tuple[Account, ...]

    def named(self, name: str) -> Account:
        for account in self.accounts:
            if account.name == name:
                return account
        known = ", ".join(a.name for a in self.accounts)
        raise ConfigError(f"{self.folder}: no account {name!r} (accounts: {known})")


def load_deployment(folder: str | Path, environ: Mapping[str, str]) -> Deployment:
    """Every account under ``folder``; every problem is one line of a ConfigError."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder of accounts (one folder per account)")
    shared = sorted(name for name in _PER_ACCOUNT if environ.get(name))
    if shared:
        raise ConfigError(
            f"{', '.join(shared)}: set in the environment, these would be every account's; "
            f"put each account's in its own {root}/<account>/.env (and its store in its "
            f"{ACCOUNT_FILE}), then unset them"
        )
    settings = load_deployment_settings(root / DEPLOYMENT_FILE)
    accounts: list[Account] = []
    stores: dict[str, str] = {}
    for path in sorted(root.glob(f"*/{ACCOUNT_FILE}")):
        name = path.parent.name
        if not _NAME.fullmatch(name):
            raise ConfigError(
                f"{path.parent}: an account's folder name is lowercase letters, digits, - "
                "and _ (at most 40), starting with a letter or digit"
            )
        config = _in_deployment(load_config(path), name, settings)
        store = _store_of(path, config.store)
        if store in stores:
            raise ConfigError(
                f"{path}: store: is the store of account {stores[store]!r} too; give each account "
                "its own (on PostgreSQL, ?schema=<account> in one database)"
            )
        stores[store] = name
        secrets = load_secrets({}, path.parent, config)
        accounts.append(Account(name, config, secrets, config.store))
    if not accounts:
        raise ConfigError(f"{root}: no accounts: expected {root}/<account>/{ACCOUNT_FILE}")
    _check_routes(accounts)
    return Deployment(root, settings, tuple(accounts))


def _in_deployment(config: Config, name: str, settings: DeploymentSettings) -> Config:
    """The account's config as served under ``/accounts/<name>``: its pages and its reps'
    statement links live under that prefix, and only the deployment's own proxy setting
    counts (the receiver in front of every account applies it once)."""
    public = config.webhooks.public_url
    if public is None and settings.webhooks.public_url is not None:
        public = f"{settings.webhooks.public_url.rstrip('/')}/accounts/{name}"
    webhooks = config.webhooks.model_copy(update={"public_url": public, "trusted_proxies": 0})
    return config.model_copy(update={"webhooks": webhooks})


def _store_of(path: Path, url: str) -> str:
    """The store as compared between accounts; a relative SQLite path is refused."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{path}: store: {url!r} is not a database URL") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or not Path(database).is_absolute():
            raise ConfigError(
                f"{path}: store: {url!r} is relative to wherever a command runs; give an "
                "absolute path (sqlite:////srv/spm/acme.db) or a PostgreSQL URL with "
                "?schema=<account>"
            )
        return f"sqlite:{Path(database).resolve()}"
    schema = parsed.query.get("schema")
    shown = parsed.difference_update_query(["schema"]).render_as_string(hide_password=True)
    return f"{shown}#{schema or 'public'}"


def _check_routes(accounts: list[Account]) -> None:
    """Two accounts with one portal or org id would split its deliveries at random."""
    seen: dict[str, str] = {}
    for account in accounts:
        for route in (account.portal_id, account.org_id):
            if route is None:
                continue
            route = f"{account.crm}:{route}"
            if route in seen:
                raise ConfigError(
                    f"accounts {seen[route]!r} and {account.name!r} are both for CRM account "
                    f"{route.partition(':')[2]}: one folder per org or portal"
                )
            seen[route] = account.name
