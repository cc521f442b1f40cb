"""Salesforce: the adapter (``adapter``), its API client (``api``) and ``install``."""

from connector.adapters.salesforce.adapter import SalesforceAdapter
from connector.adapters.salesforce.api import SalesforceCredentials, SalesforceSettings

__all__ = ["SalesforceAdapter", "SalesforceCredentials", "SalesforceSettings"]
