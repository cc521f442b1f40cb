"""Shared pytest configuration: fixtures live in plugin modules, one per concern."""

pytest_plugins = [
    "tests.fixtures.salesforce_sandbox",
    "tests.fixtures.hubspot_sandbox",
    "tests.fixtures.stores",
    "tests.fixtures.retries",
    "tests.fixtures.crm_pair",
]
