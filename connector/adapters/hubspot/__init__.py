"""HubSpot: the adapter (``adapter``), its API client (``api``), value formats and ``install``."""

from connector.adapters.hubspot.adapter import HubSpotAdapter
from connector.adapters.hubspot.api import HubSpotSettings

__all__ = ["HubSpotAdapter", "HubSpotSettings"]
