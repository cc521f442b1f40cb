"""`spm-connector sandbox`: run one emulated CRM on loopback and print how to reach it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click
import yaml

SALESFORCE, HUBSPOT = "salesforce", "hubspot"


def _people(crm: str, server: Any) -> list[tuple[str, str, str]]:
    if crm == SALESFORCE:
        return [(u["Id"], u["Name"], u["Email"]) for u in server.users()]
    return [
        (o["id"], f"{o['firstName']} {o['lastName']}".strip(), o["email"]) for o in server.owners()
    ]


def _write_config(
    directory: Path, crm: dict[str, Any], people: list[tuple[str, str, str]], server: Any
) -> Path:
    """spm.yaml beside the CA (spm.sandbox.yaml if an spm.yaml is there already)."""
    from crm_sandbox.config_file import write_sandbox_config

    name = "spm.sandbox.yaml" if (directory / "spm.yaml").exists() else "spm.yaml"
    members = [user_id for user_id, _, _ in people]
    managers = server.team_managers() if hasattr(server, "team_managers") else None
    return write_sandbox_config(directory, crm, members, name, managers)


@click.command("sandbox")
@click.option(
    "--crm", type=click.Choice([SALESFORCE, HUBSPOT]), required=True, help="Which CRM to emulate."
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0: any free one).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the sample data.")
@click.option("--reps", type=click.IntRange(1), default=12, show_default=True)
@click.option("--deals", type=click.IntRange(0), default=400, show_default=True)
@click.option(
    "--ca-path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("sandbox-ca.pem"),
    show_default=True,
    help="Where to write the Salesforce sandbox's CA certificate, for clients to trust.",
)
@click.option(
    "--webhook-url",
    metavar="URL",
    help="Send HubSpot webhooks / Salesforce outbound messages here when deals change.",
)
def sandbox(
    crm: str,
    port: int,
    seed: int,
    reps: int,
    deals: int,
    ca_path: Path,
    webhook_url: str | None,
) -> None:
    """Run a local Salesforce or HubSpot sandbox, seeded with realistic data, until Ctrl-C."""
    server: Any
    if crm == SALESFORCE:
        from crm_sandbox.salesforce import SalesforceSandbox

        server = SalesforceSandbox(
            seed=seed,
            reps=reps,
            deals=deals,
            port=port,
            ca_path=ca_path.resolve(),
            outbound_url=webhook_url,
        )
    else:
        from crm_sandbox.hubspot import HubSpotSandbox

        server = HubSpotSandbox(
            seed=seed,
            reps=reps,
            deals=deals,
            port=port,
            webhook_url=webhook_url,
        )
    server.start()
    try:
        settings: dict[str, Any] = server.settings()
        click.echo(f"{crm} sandbox running at {server.url}")
        click.echo(f"  seeded: {reps} reps, {deals} deals (seed {seed})")
        if crm == SALESFORCE:
            click.echo(f"  CA certificate: {ca_path.resolve()}")
            click.echo(f"  org id: {settings['org_id']}")
        click.echo(f"  admin endpoint: {settings['admin_url']} (calls, faults, mutate)")
        click.echo(f"  admin token (header X-Sandbox-Token): {settings['admin_token']}")
        if webhook_url:
            click.echo(f"  deal changes are sent to: {webhook_url}")
        people = _people(crm, server)
        click.echo(f"\nUsers ({len(people)}):")
        for user_id, name, email in people:
            click.echo(f"  {user_id:<20} {name:<22} {email}")
        config_path = _write_config(ca_path.resolve().parent, settings["crm"], people, server)
        click.echo(f"\nA ready config, every user a plan member: {config_path}")
        click.echo(f"  spm-connector --config {config_path} install")
        click.echo("\nEnvironment:")
        for name, value in settings["env"].items():
            click.echo(f"  export {name}={value}")
        click.echo("\nIn spm.yaml:")
        block = yaml.safe_dump({"crm": settings["crm"]}, sort_keys=False).rstrip()
        for line in block.splitlines():
            click.echo(f"  {line}")
        click.echo("\nPress Ctrl-C to stop.", nl=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.stop()
