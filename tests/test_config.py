"""spm.yaml and secrets: the happy path, then one test per kind of mistake, each message exact."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from connector.config import (
    Config,
    ConfigError,
    HubspotCrm,
    SalesforceCrm,
    load_config,
    load_secrets,
    read_dotenv,
    resolve_config_path,
)
from connector.core.periods import PeriodKind
from connector.core.plans import Method

GOOD = """\
currency: USD
period: month
timezone: Europe/Paris
crm:
  type: salesforce
  instance_url: https://acme.my.salesforce.com
  api_version: "62.0"
  won_stages: null
  base_url: null
  pipelines: null
  ca_bundle: null
  timeout_s: 30
store: sqlite:///spm.db
fields: {commission: Payout_Commission__c}
webhooks:
  public_url: https://spm.example.com
  max_body_bytes: 1048576
plans:
  - id: ae-2026
    name: Account Executives 2026
    start: 2026-01-01
    end: 2026-12-31
    members: [0055g00000AbCdEAAV, dana@acme.example]
    quota: 50000
    quota_overrides: {dana@acme.example: 60000}
    ramp: [0.25, 0.5, 0.75]
    commission:
      method: marginal
      tiers_on: attainment
      tiers:
        - {up_to: 1.0, rate: 0.10}
        - {up_to: 1.5, rate: 0.15}
        - {rate: 0.20}
      cap: null
    draw: {type: recoverable, amount: 3000, periods: 6, recovery_cap: 0.5, forgive: on_termination}
    bonuses: [{at: 1.0, amount: 1000}]
    spiffs: [{name: new-logo, when: {type: New Business}, amount: 250}]
    clawback: {window_days: 90}
"""


def write(tmp_path: Path, text: str, name: str = "spm.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value).replace(path, "spm.yaml")


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert isinstance(config, Config)
    assert config.currency == "USD"
    assert config.period is PeriodKind.MONTH
    assert config.zone.key == "Europe/Paris"
    assert isinstance(config.crm, SalesforceCrm)
    assert config.crm.api_version == "62.0"
    assert config.crm.timeout_s == 30
    assert config.store == "sqlite:///spm.db"
    assert config.field_names == {"commission": "Payout_Commission__c"}
    assert config.webhooks.max_body_bytes == 1_048_576
    plan = config.plans[0]
    assert plan.start == date(2026, 1, 1)
    assert plan.commission.method is Method.MARGINAL
    assert plan.quota_overrides == {"dana@acme.example": Decimal("60000")}


def test_queue_other_than_inline_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, GOOD.replace("\nplans:", "\nqueue: inline\nplans:", 1)))
    text = GOOD.replace("\nplans:", "\nqueue: redis://127.0.0.1:6379/0\nplans:", 1)
    message = error_of(tmp_path, text)
    assert message.startswith("spm.yaml: queue: 'redis://127.0.0.1:6379/0': only `inline`")
    assert "spm-connector worker" in message


def test_defaults_for_optional_sections(tmp_path: Path) -> None:
    text = GOOD.split("crm:")[0] + "plans:" + GOOD.split("plans:")[1]
    config = load_config(write(tmp_path, text))
    assert config.crm is None
    assert config.store == "sqlite:///spm.db"
    assert config.fields == {}
    assert config.webhooks.public_url is None


def test_hubspot_settings(tmp_path: Path) -> None:
    text = GOOD.replace("type: salesforce", "type: hubspot").replace(
        "  instance_url: https://acme.my.salesforce.com\n", ""
    )
    text = text.replace('  api_version: "62.0"\n', "").replace(
        "pipelines: null", "pipelines: ['default', 12345]"
    )
    text = text.replace("Payout_Commission__c", "payout_commission")
    config = load_config(write(tmp_path, text))
    assert isinstance(config.crm, HubspotCrm)
    assert config.crm.base_url == "https://api.hubapi.com"
    assert config.crm.pipelines == ("default", "12345")


def test_yaml_floats_are_exact_decimals(tmp_path: Path) -> None:
    tiers = load_config(write(tmp_path, GOOD)).plans[0].commission.tiers
    assert tiers[0].rate == Decimal("0.1")
    assert str(tiers[0].rate) == "0.10"  # the text as written, not 0.1000000000000000055…
    assert tiers[0].rate != Decimal(0.1)  # noqa: RUF032 - the binary float, on purpose


def test_unknown_key(tmp_path: Path) -> None:
    text = GOOD.replace("    quota: 50000\n", "    quota: 50000\n    qouta: 1\n")
    assert error_of(tmp_path, text) == "spm.yaml: plans[0].qouta: unknown key"


def test_bad_value_is_named_by_its_path(tmp_path: Path) -> None:
    text = GOOD.replace("rate: 0.15", "rate: 1.5")
    assert (
        error_of(tmp_path, text) == "spm.yaml: plans[0].commission.tiers[1].rate: "
        "must be between 0 and 1"
    )


def test_several_mistakes_give_several_lines(tmp_path: Path) -> None:
    text = GOOD.replace("rate: 0.15", "rate: 1.5").replace("period: month", "period: week")
    assert error_of(tmp_path, text).splitlines() == [
        "spm.yaml: period: must be 'month' or 'quarter'",
        "spm.yaml: plans[0].commission.tiers[1].rate: must be between 0 and 1",
    ]


def test_tier_bounds_must_increase(tmp_path: Path) -> None:
    text = GOOD.replace("up_to: 1.5", "up_to: 0.9")
    assert error_of(tmp_path, text) == (
        "spm.yaml: plans[0].commission.tiers[1].up_to: "
        "tier bounds must strictly increase (0.9 follows 1.0)"
    )


def test_last_tier_has_no_bound(tmp_path: Path) -> None:
    text = GOOD.replace("{rate: 0.20}", "{up_to: 2, rate: 0.20}")
    assert error_of(tmp_path, text) == (
        "spm.yaml: plans[0].commission: the last tier must have no up_to "
        "(it covers everything above)"
    )


def test_overlapping_membership(tmp_path: Path) -> None:
    second = GOOD[GOOD.index("  - id: ae-2026") :].replace("ae-2026", "ae-h2")
    second = second.replace("2026-01-01", "2026-07-01").replace(
        "[0055g00000AbCdEAAV, dana@acme.example]", "[DANA@acme.example]"
    )
    second = second.replace("quota_overrides: {dana@acme.example: 60000}", "quota_overrides: {}")
    assert error_of(tmp_path, GOOD + second) == (
        "spm.yaml: plans: member DANA@acme.example is in plans ae-2026 and ae-h2, "
        "which cover the same days"
    )


def test_plan_ids_are_unique(tmp_path: Path) -> None:
    second = GOOD[GOOD.index("  - id: ae-2026") :]
    second = second.replace("2026-01-01", "2027-01-01").replace("2026-12-31", "2027-12-31")
    assert error_of(tmp_path, GOOD + second) == (
        "spm.yaml: plans[1].id: 'ae-2026' is already the id of plans[0]"
    )


def test_duplicate_key(tmp_path: Path) -> None:
    text = GOOD.replace("    quota: 50000\n", "    quota: 50000\n    quota: 60000\n")
    assert (
        error_of(tmp_path, text) == "spm.yaml:25:5: duplicate key 'quota' (first given on line 24)"
    )


def test_yaml_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    text = GOOD.replace("    quota: 50000\n", "    quota: [50000\n")
    assert error_of(tmp_path, text) == (
        "spm.yaml:25:20: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 24)"
    )


def test_bad_timezone(tmp_path: Path) -> None:
    text = GOOD.replace("timezone: Europe/Paris", "timezone: Mars/Olympus")
    assert error_of(tmp_path, text) == (
        "spm.yaml: timezone: 'Mars/Olympus' is not an IANA time zone (like UTC or America/New_York)"
    )


def test_keys_of_the_other_crm_are_refused(tmp_path: Path) -> None:
    text = GOOD.replace("pipelines: null", "pipelines: [default]")
    assert error_of(tmp_path, text) == (
        "spm.yaml: crm.pipelines: is a HubSpot setting; remove it (crm.type is salesforce)"
    )


def test_crm_type(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("type: salesforce", "type: pipedrive")) == (
        "spm.yaml: crm.type: must be salesforce or hubspot, not 'pipedrive'"
    )
    assert error_of(tmp_path, GOOD.replace("  type: salesforce\n", "")) == (
        "spm.yaml: crm.type: is required (salesforce or hubspot)"
    )


def test_unknown_field_key(tmp_path: Path) -> None:
    text = GOOD.replace("fields: {commission:", "fields: {comission:")
    message = error_of(tmp_path, text)
    assert message.startswith("spm.yaml: fields.comission: not a field key; known keys: ")
    assert "hubspot_rep_object" in message


def test_missing_and_malformed_top_level(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("currency: USD\n", "")) == (
        "spm.yaml: currency: is required"
    )
    assert error_of(tmp_path, GOOD.replace("currency: USD", "currency: dollars")) == (
        "spm.yaml: currency: must be a three-letter ISO currency code like USD, not 'dollars'"
    )
    assert error_of(tmp_path, "- a list\n") == (
        "spm.yaml: expected a mapping of settings (currency:, period:, plans:, …)"
    )


def test_money_must_be_exact_cents_and_finite(tmp_path: Path) -> None:
    assert error_of(tmp_path, GOOD.replace("amount: 3000", "amount: 30.005")) == (
        "spm.yaml: plans[0].draw.amount: 30.005 has more than two decimal places; give whole cents"
    )
    assert error_of(tmp_path, GOOD.replace("rate: 0.10", "rate: .inf")) == (
        "spm.yaml:31:30: .inf is not a finite decimal number"
    )


def test_numeric_member_ids_are_read_as_text(tmp_path: Path) -> None:
    # HubSpot owner ids are digits; YAML reads them as numbers.
    text = GOOD.replace("[0055g00000AbCdEAAV,", "[123456,")
    path = tmp_path / "spm.yaml"
    path.write_text(text)
    assert load_config(path).plans[0].members[0] == "123456"


def test_missing_file_names_the_path_as_given() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("nowhere/spm.yaml")
    assert str(caught.value) == (
        "nowhere/spm.yaml: no such file (give --config PATH or set SPM_CONFIG)"
    )


def test_config_path_resolution() -> None:
    assert resolve_config_path("a.yaml", {"SPM_CONFIG": "b.yaml"}) == "a.yaml"
    assert resolve_config_path(None, {"SPM_CONFIG": "b.yaml"}) == "b.yaml"
    assert resolve_config_path(None, {}) == "spm.yaml"


# --- secrets -----------------------------------------------------------------

TOKEN = "00Dxx0000001gPL!AQ4AQFakeTokenValue"


def test_secrets_from_the_environment_and_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# local development\n"
        "export SPM_HUBSPOT_ACCESS_TOKEN='pat-na1-from-file'\n"
        'SPM_WEBHOOK_SECRET="s3cr\\"et" # trailing comment\n'
        "SPM_SALESFORCE_ACCESS_TOKEN=from-file\n"
        "\n"
        "OTHER=ignored\n",
        encoding="utf-8",
    )
    secrets = load_secrets({"SPM_SALESFORCE_ACCESS_TOKEN": TOKEN, "HOME": "/root"}, tmp_path)
    assert secrets.salesforce_access_token is not None
    assert secrets.salesforce_access_token.get_secret_value() == TOKEN  # the environment wins
    assert secrets.hubspot_access_token is not None
    assert secrets.hubspot_access_token.get_secret_value() == "pat-na1-from-file"
    assert secrets.webhook_secret is not None
    assert secrets.webhook_secret.get_secret_value() == 's3cr"et'
    assert secrets.salesforce_password is None


def test_dotenv_next_to_the_config_and_in_the_working_directory(tmp_path: Path) -> None:
    deploy, here = tmp_path / "etc-spm", tmp_path / "cwd"
    deploy.mkdir()
    here.mkdir()
    config = load_config(write(deploy, GOOD))
    (deploy / ".env").write_text(
        "SPM_HUBSPOT_ACCESS_TOKEN=beside-the-config\nSPM_WEBHOOK_SECRET=beside\n",
        encoding="utf-8",
    )
    (here / ".env").write_text(
        "SPM_HUBSPOT_ACCESS_TOKEN=working-dir\nSPM_HUBSPOT_CLIENT_SECRET=from-cwd\n",
        encoding="utf-8",
    )
    secrets = load_secrets({"SPM_WEBHOOK_SECRET": "environment"}, here, config)
    assert secrets.hubspot_access_token is not None and secrets.webhook_secret is not None
    assert secrets.hubspot_client_secret is not None
    assert secrets.hubspot_access_token.get_secret_value() == "beside-the-config"
    assert secrets.webhook_secret.get_secret_value() == "environment"  # the environment wins
    assert secrets.hubspot_client_secret.get_secret_value() == "from-cwd"  # what it lacks
    alone = load_secrets({}, here)  # no config: the working directory's only
    assert alone.hubspot_access_token is not None
    assert alone.hubspot_access_token.get_secret_value() == "working-dir"


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    secrets = load_secrets(
        {"SPM_SALESFORCE_ACCESS_TOKEN": TOKEN, "SPM_HUBSPOT_CLIENT_SECRET": "hush-hush"}, tmp_path
    )
    for text in (str(secrets), repr(secrets), secrets.model_dump_json()):
        assert TOKEN not in text
        assert "hush-hush" not in text


def test_a_bad_dotenv_line_is_named_but_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("SPM_OK=1\nthis is hunter2\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        read_dotenv(path)
    assert str(caught.value) == f"{path}:2: expected NAME=value"
    assert "hunter2" not in str(caught.value)


def test_no_dotenv_is_fine(tmp_path: Path) -> None:
    assert load_secrets({}, tmp_path).model_dump() == dict.fromkeys(
        load_secrets({}, tmp_path).model_dump()
    )


def test_locale_says_how_money_reads_and_an_unknown_one_is_named(tmp_path: Path) -> None:
    from decimal import Decimal as D

    from connector.views.money import money

    config = load_config(write(tmp_path, GOOD.replace("\nplans:", "\nlocale: de_DE\nplans:", 1)))
    assert config.locale == "de_DE"
    assert money(D("-1234.5"), "EUR", config.locale) == "-1.234,50\xa0€"
    assert money(D("1234567.5"), "USD") == "$1,234,567.50"
    assert money(D("1234.005"), "USD") == "$1,234.005"  # never rounded for display
    assert money(None, "USD") == "—"
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace("\nplans:", "\nlocale: xx_YY\nplans:", 1)))
    assert "locale: 'xx_YY' is not a locale (like en_US" in str(caught.value)
