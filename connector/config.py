"""spm.yaml and the environment → validated, frozen settings.

The YAML is read with a loader that keeps every float scalar as a ``Decimal``
made from its source text (``rate: 0.1`` is exactly one tenth, never the binary
float 0.1000000000000000055…) and refuses duplicate keys, which YAML itself
would silently resolve to the last one. Every mistake becomes one line of a
:class:`~connector.errors.ConfigError`, in the form
``spm.yaml: plans[0].commission.tiers[1].rate: must be between 0 and 1``.

Secrets never live in the file: :func:`load_secrets` reads them from the
environment and a ``.env`` file, into ``SecretStr`` fields that print as stars.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.adapters.base import DAILY_RESERVE
from connector.config_errors import messages
from connector.core.coaching import Play, TrainingModule
from connector.core.currency import RateBasis
from connector.core.fields import KEYS as FIELD_KEYS
from connector.core.fields import target_problems
from connector.core.models import PeriodKind
from connector.core.periods import first_day, period_of
from connector.core.plan_checks import membership_overlaps
from connector.core.plans import Plan, Team
from connector.core.recognition import Recognition
from connector.errors import ConfigError
from connector.sync.schedule import Schedule
from connector.views.money import DEFAULT_LOCALE, known_locale

DEFAULT_CONFIG = "spm.yaml"
CONFIG_ENV = "SPM_CONFIG"
DEFAULT_STORE = "sqlite:///spm.db"
STORE_ENV = "SPM_STORE_URL"
HUBSPOT_REP_OBJECT = "hubspot_rep_object"
_REP_OBJECT = re.compile(r"^(?:[0-9]+-[0-9]+|[A-Za-z][A-Za-z0-9_]{0,63})$")


# --- YAML ------------------------------------------------------------------


class ConfigLoader(yaml.SafeLoader):
    """SafeLoader with exact decimals and no duplicate keys.

    Dates (``2026-01-01``) stay ``datetime.date`` as in SafeLoader; integers
    stay ``int`` (already exact).
    """

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Decimal:  # type: ignore[override]
        text = str(self.construct_scalar(node)).replace("_", "")
        if ":" in text or text.lower().lstrip("+-") in (".inf", ".nan"):
            # Base-60 floats (1:30.5) and infinities are YAML curiosities, never a plan's number.
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is not a finite decimal number", node.start_mark
            )
        return Decimal(text)

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> object:  # type: ignore[override]
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError as error:  # 2026-13-01 matches YAML's pattern, then fails
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value} is not a valid date ({error})", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merged keys may legitimately be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first given on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


ConfigLoader.add_constructor("tag:yaml.org,2002:float", ConfigLoader.construct_yaml_float)
ConfigLoader.add_constructor("tag:yaml.org,2002:timestamp", ConfigLoader.construct_yaml_timestamp)

# Numbers as written. YAML 1.1 reads 010000 as octal (4096), 10:00 as base 60 (600),
# 0x1A as hex: none of those is what an admin typing a quota or an id means. Plain
# decimal integers stay integers; one with a leading zero stays text (an id such as
# 0123 keeps its zero, a quota of 010000 is parsed from the text as 10000); the rest
# stay text and fail where a number is required, naming the field.
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?0|[-+]?[1-9][0-9_]*)$"), list("-+0123456789")
)
ConfigLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*\.(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
MAX_CONFIG_BYTES = 1_048_576


def _load_yaml(text: str, name: str) -> object:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: {len(text):,} characters is too large for a config file")
    try:
        return yaml.load(text, Loader=ConfigLoader)
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply to be a config file") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = error.problem or error.context or "not valid YAML"
        if error.context and error.problem and error.context_mark:
            problem += f" ({error.context} at line {error.context_mark.line + 1})"
        raise ConfigError(f"{where}: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{name}: not valid YAML ({error})") from None


# --- the settings ----------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: object) -> object:
    """A YAML number where text is meant (``api_version: 62.0``) → its text."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text)]


class CrmType(StrEnum):
    SALESFORCE = "salesforce"
    HUBSPOT = "hubspot"


_SALESFORCE_KEYS = ("instance_url", "api_version", "won_stages")
_HUBSPOT_KEYS = ("base_url", "pipelines", "quota_goal", "portal_id")


def _refuse_other_crm(data: object, other_keys: tuple[str, ...], other: str, this: str) -> object:
    """Keys of the other CRM: null is harmless (the documented template lists
    both), a value is a mistake the admin would want to hear about."""
    if not isinstance(data, dict):
        return data
    for key in other_keys:
        if key in data and data[key] is not None:
            raise ValueError(f"{key}: is a {other} setting; remove it (crm.type is {this})")
    # null means "the default" for every key (the template writes `won_stages: null`).
    return {
        key: value for key, value in data.items() if key not in other_keys and value is not None
    }


# The share of the account's daily API allocation the connector leaves to others.
DailyReserve = Annotated[Decimal, Field(ge=0, le=Decimal("0.9"))]


class SalesforceCrm(_Model):
    type: Literal[CrmType.SALESFORCE]
    instance_url: str = Field(pattern=r"^https://[^\s/]+", min_length=9)
    api_version: Text = Field(default="62.0", pattern=r"^\d+\.\d$")
    won_stages: tuple[Text, ...] | None = None
    ca_bundle: Path | None = None
    timeout_s: float = Field(default=30, gt=0)
    daily_reserve: DailyReserve = DAILY_RESERVE

    @model_validator(mode="before")
    @classmethod
    def _only_salesforce(cls, data: object) -> object:
        return _refuse_other_crm(data, _HUBSPOT_KEYS, "HubSpot", "salesforce")


class HubspotCrm(_Model):
    type: Literal[CrmType.HUBSPOT]
    base_url: str = Field(default="https://api.hubapi.com", pattern=r"^https?://[^\s/]+")
    pipelines: tuple[Text, ...] | None = None
    # With quota_source: crm, only the goal targets of the HubSpot goal of this name.
    quota_goal: Text | None = None
    ca_bundle: Path | None = None
    timeout_s: float = Field(default=30, gt=0)
    # The portal (Hub ID) this config is for: how a receiver serving several accounts
    # routes a delivery before the account's first sync has recorded it.
    portal_id: int | None = Field(default=None, ge=1, lt=2**63)
    daily_reserve: DailyReserve = DAILY_RESERVE

    @model_validator(mode="before")
    @classmethod
    def _only_hubspot(cls, data: object) -> object:
        return _refuse_other_crm(data, _SALESFORCE_KEYS, "Salesforce", "hubspot")


CrmSettings = Annotated[SalesforceCrm | HubspotCrm, Field(discriminator="type")]


class Webhooks(_Model):
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    # How many reverse proxies in front of the receiver to believe about the client's
    # scheme, host and address (X-Forwarded-*); 0 trusts none of those headers.
    trusted_proxies: int = Field(default=0, ge=0, le=5)


class PayCycleSettings(_Model):
    # Who approves each statement before its period may close, in order (pay-cycle.md).
    approvals: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], ...] = ()
    # Whether an open dispute stops its period from closing.
    disputes_block_close: bool = False
    # How long a rep's statement link lasts from the first day of the month it was made.
    link_days: int = Field(default=45, ge=1, le=366)
    # The CRM user field (Salesforce User, e.g. EmployeeNumber) or rep-object property
    # (HubSpot) holding the employee id payroll knows.
    payroll_id_field: str | None = Field(default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{0,79}$")


class CurrencyRates(_Model):
    # file: rates.csv; crm: the CRM's own rates (Salesforce CurrencyType and
    # DatedConversionRate, HubSpot's exchange rates), read by sync.
    source: Literal["file", "crm"] = "file"
    # rates.csv: currency, from, rate (plan currency per unit), relative to spm.yaml.
    file: str | None = Field(default=None, min_length=1)
    basis: RateBasis = RateBasis.CLOSE_DATE  # or year_start: one rate per plan year

    @model_validator(mode="after")
    def _file_or_crm(self) -> Self:
        if self.source == "file" and self.file is None:
            raise ValueError("file: is required (or set source: crm to read the CRM's rates)")
        if self.source == "crm" and self.file is not None:
            raise ValueError(
                "file: rates come from the CRM with source: crm; give calc --rates FILE instead"
            )
        return self


class Kpis(_Model):
    # Reads every lead (Salesforce) or contact (HubSpot) the reps own: extra API calls.
    lead_to_sale: bool = False


class Config(_Model):
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    period: PeriodKind
    timezone: str = "UTC"
    crm: CrmSettings | None = None  # calc works offline; install/sync require it
    store: str = Field(default=DEFAULT_STORE, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")
    fields: dict[str, str] = Field(default_factory=dict)
    webhooks: Webhooks = Webhooks()
    # The store's inbox is the queue; brokers (Celery) are not built yet.
    queue: str = "inline"
    # Who is on which team, for team goals: `crm` (Salesforce managers, HubSpot
    # teams, reps.csv manager_id / team_id) or a list of teams.
    teams: Literal["crm"] | tuple[Team, ...] | None = None
    # The managers of CRM teams (HubSpot teams name none), by team id: a user id or
    # email. Manager overrides follow them (calculation.md §16).
    team_managers: dict[str, str] = Field(default_factory=dict)
    kpis: Kpis = Kpis()
    # Awards reps earn from their statements, each given once (docs/coaching.md).
    recognition: tuple[Recognition, ...] = ()
    # Plays that open CRM tasks for a rep's manager, and the training they can assign
    # (docs/coaching.md).
    coaching: tuple[Play, ...] = ()
    training: tuple[TrainingModule, ...] = ()
    # Syncs the workers run on their own (no cron): `{every: 15m, full_at: "02:00"}`.
    schedule: Schedule | None = None
    pay_cycle: PayCycleSettings = PayCycleSettings()
    # Exchange rates for deals in other currencies (calculation.md §15); none: left out.
    currency_rates: CurrencyRates | None = None
    # How money reads on statements, tables and the reports page (Babel's locale names).
    locale: str = DEFAULT_LOCALE
    plans: tuple[Plan, ...] = Field(min_length=1)
    # The folder of the file it was read from: its `.env` is read too (load_secrets).
    _folder: Path | None = PrivateAttr(default=None)

    @property
    def folder(self) -> Path | None:
        return self._folder

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if not known_locale(value):
            raise ValueError(f"{value!r} is not a locale (like en_US, en_GB, de_DE or fr_FR)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (like UTC or America/New_York)"
            ) from None
        return value

    @field_validator("teams", mode="before")
    @classmethod
    def _teams_form(cls, value: object) -> object:
        if isinstance(value, str) and value != "crm":
            raise ValueError(
                f"{value!r}: give `crm` (managers and teams as the CRM has them) or a list "
                "of teams, each {id, manager, members}"
            )
        return value

    @field_validator("queue")
    @classmethod
    def _known_queue(cls, value: str) -> str:
        if value != "inline":
            raise ValueError(
                f"{value!r}: only `inline` is available: events wait in the store's inbox, "
                "and any number of `spm-connector worker` processes share it"
            )
        return value

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for key, name in value.items():
            if key not in FIELD_KEYS and key != HUBSPOT_REP_OBJECT:
                known = ", ".join(sorted([*FIELD_KEYS, HUBSPOT_REP_OBJECT]))
                raise ValueError(f"{key}: not a field key; known keys: {known}")
            if not name.strip():
                raise ValueError(f"{key}: the name must not be empty")
        return value

    @model_validator(mode="after")
    def _fields_ours(self) -> Self:
        """Our writes may go only to fields of our own, never to what the engine reads."""
        rep_object = self.fields.get(HUBSPOT_REP_OBJECT)
        if rep_object is not None and not _REP_OBJECT.match(rep_object):
            raise ValueError(
                f"fields.{HUBSPOT_REP_OBJECT}: {rep_object!r} is not a HubSpot object name "
                "(like users, p1234_spm_rep or 2-1234)"
            )
        if self.crm is not None:
            problems = target_problems(self.field_names, self.crm.type.value)
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _plays_consistent(self) -> Self:
        modules = [module.id for module in self.training]
        for index, module_id in enumerate(modules):
            if module_id in modules[:index]:
                raise ValueError(f"training[{index}].id: {module_id!r} is already a module's id")
        plays = [play.play for play in self.coaching]
        for index, play in enumerate(self.coaching):
            if play.play in plays[:index]:
                raise ValueError(f"coaching[{index}].play: {play.play!r} is already a play's id")
            if play.assign is not None and play.assign not in modules:
                known = ", ".join(modules) or "none: add them under training:"
                raise ValueError(
                    f"coaching[{index}].assign: {play.assign!r} is not a training module's id "
                    f"(known: {known})"
                )
        return self

    @model_validator(mode="after")
    def _plans_consistent(self) -> Self:
        first_index: dict[str, int] = {}
        for index, plan in enumerate(self.plans):
            if plan.id in first_index:
                first = first_index[plan.id]
                raise ValueError(
                    f"plans[{index}].id: {plan.id!r} is already the id of plans[{first}]"
                )
            first_index[plan.id] = index
        overlaps = membership_overlaps(self.plans)
        if overlaps:
            raise ValueError("plans: " + "; ".join(overlaps))
        for index, plan in enumerate(self.plans):
            for number, version in enumerate(plan.versions):
                day = version.effective_from
                if first_day(period_of(day, self.period), self.period) != day:
                    raise ValueError(
                        f"plans[{index}].versions[{number}].effective_from: {day} is not the "
                        f"first day of a {self.period.value}: a version starts a period"
                    )
            for number, goal in enumerate(plan.goals):
                if goal.team and self.teams is None:
                    raise ValueError(
                        f"plans[{index}].goals[{number}]: {goal.key} is a team goal, but no "
                        "teams are set: add `teams: crm` (managers / CRM teams) or list them "
                        "under `teams:`"
                    )
        if isinstance(self.teams, tuple):
            seen: set[str] = set()
            for index, team in enumerate(self.teams):
                if team.id in seen:
                    raise ValueError(f"teams[{index}].id: {team.id!r} is listed twice")
                seen.add(team.id)
        return self

    def rates_path(self) -> Path | None:
        """The rates file, relative to the config file's folder."""
        if self.currency_rates is None or self.currency_rates.file is None:
            return None
        path = Path(self.currency_rates.file)
        return path if path.is_absolute() or self._folder is None else self._folder / path

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def field_names(self) -> dict[str, str]:
        """The ``fields:`` renames of CRM fields, by key (see connector.core.fields)."""
        return {key: name for key, name in self.fields.items() if key != HUBSPOT_REP_OBJECT}

    @property
    def hubspot_rep_object(self) -> str | None:
        return self.fields.get(HUBSPOT_REP_OBJECT)


def store_url(config: Config, environ: Mapping[str, str]) -> str:
    """``SPM_STORE_URL`` when set (a password belongs in the environment), else ``store:``."""
    return environ.get(STORE_ENV) or config.store


def config_warnings(config: Config) -> list[str]:
    """Settings that are allowed but probably not meant: said on stderr and in summaries."""
    warnings: list[str] = []
    for index, plan in enumerate(config.plans):
        for number, bonus in enumerate(plan.bonuses):
            if bonus.amount < 0:
                warnings.append(
                    f"plans[{index}].bonuses[{number}].amount: {bonus.amount} is negative: it "
                    f"takes money away from reps who reach {bonus.at:%} attainment"
                )
        for number, spiff in enumerate(plan.spiffs):
            if spiff.amount is not None and spiff.amount < 0:
                warnings.append(
                    f"plans[{index}].spiffs[{number}].amount: {spiff.amount} is negative: "
                    f"SPIFF {spiff.name} takes money away on every matching deal"
                )
    return warnings


def resolve_config_path(option: str | None, environ: Mapping[str, str]) -> str:
    """``--config``, else ``$SPM_CONFIG``, else ``./spm.yaml`` — as the user spelled it."""
    if option:
        return option
    return environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def load_config(path: str | Path) -> Config:
    """Read and validate the config file; every problem is one line of a ConfigError."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{name}: no such file (give --config PATH or set {CONFIG_ENV})"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"{name}: cannot be read ({error.strerror})") from None
    data = _load_yaml(text, name)
    if not isinstance(data, dict):
        raise ConfigError(f"{name}: expected a mapping of settings (currency:, period:, plans:, …)")
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError("\n".join(messages(name, error.errors(include_url=False)))) from None
    config._folder = Path(path).resolve().parent
    return config


class DeploymentSettings(_Model):
    """``deployment.yaml`` beside the accounts of a deployment (connector/accounts.py)."""

    # The address the CRMs call (scheme and host): HubSpot signs it; each account's
    # pages live under it at /accounts/<name>.
    webhooks: Webhooks = Webhooks()


def load_deployment_settings(path: Path) -> DeploymentSettings:
    """The deployment's own settings (none: the defaults)."""
    if not path.exists():
        return DeploymentSettings()
    name = str(path)
    data = _load_yaml(path.read_text(encoding="utf-8"), name)
    try:
        return DeploymentSettings.model_validate(data or {})
    except ValidationError as error:
        raise ConfigError("\n".join(messages(name, error.errors(include_url=False)))) from None


# --- secrets -----------------------------------------------------------------


class Secrets(_Model):
    """Credentials from ``SPM_*`` environment variables (and ``.env``); never printed."""

    salesforce_access_token: SecretStr | None = None
    salesforce_username: str | None = None
    salesforce_password: SecretStr | None = None
    salesforce_security_token: SecretStr | None = None
    salesforce_client_id: str | None = None
    salesforce_client_secret: SecretStr | None = None
    salesforce_org_id: str | None = None
    hubspot_access_token: SecretStr | None = None
    hubspot_client_secret: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    admin_token: SecretStr | None = None
    # Signs each rep's link to their own statements; a new value voids every link.
    statement_link_secret: SecretStr | None = None
    # Approvers' own tokens for the reports page, by step: "manager=…,finance=…".
    approver_tokens: SecretStr | None = None


_SECRET_PREFIX = "SPM_"
_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def load_secrets(environ: Mapping[str, str], cwd: Path, config: Config | None = None) -> Secrets:
    """Secrets from the environment, then from ``.env`` files for what it lacks: the one
    next to the config file, then the one in the working directory ``cwd``.

    The environment wins, as with every dotenv tool: a deployment can always
    override a developer's file. The file beside the config belongs to that config
    (a cron job runs from anywhere), so it wins over the working directory's.
    """
    folders = [cwd.resolve()]
    if config is not None and config.folder is not None and config.folder != folders[0]:
        folders.insert(0, config.folder)
    values: dict[str, str] = {}
    for folder in reversed(folders):  # the first folder's values are set last: they win
        values.update(read_dotenv(folder / ".env"))
    values.update({key: value for key, value in environ.items() if key.startswith(_SECRET_PREFIX)})
    found: dict[str, str] = {}
    for field in Secrets.model_fields:
        value = values.get(_SECRET_PREFIX + field.upper(), "")
        if value:
            found[field] = value
    return Secrets.model_validate(found)


def read_dotenv(path: Path) -> dict[str, str]:
    """A ``.env`` file's ``NAME=value`` lines (missing file: nothing).

    Deliberately small: ``export`` prefixes, ``#`` comments, blank lines and
    single- or double-quoted values. Errors name the line but never echo it:
    it may hold a secret.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"{path}: cannot be read as UTF-8 text") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _DOTENV_LINE.match(line)
        if match is None:
            raise ConfigError(f"{path}:{number}: expected NAME=value")
        key, raw = match.groups()
        values[key] = _dotenv_value(raw, path, number)
    return values


def _dotenv_value(raw: str, path: Path, number: int) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        while quote == '"' and end > 0 and raw[end - 1] == "\\":
            end = raw.find(quote, end + 1)
        if end < 0 or raw[end + 1 :].strip()[:1] not in ("", "#"):
            raise ConfigError(f"{path}:{number}: unbalanced quotes")
        inner = raw[1:end]
        if quote == '"':
            inner = inner.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        return inner
    # An unquoted value ends at " #", as in shells and python-dotenv.
    return re.split(r"\s+#", raw, maxsplit=1)[0]
