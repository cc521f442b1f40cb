"""Local emulators of the Salesforce and HubSpot APIs spm-connector uses, on their real wire
formats. A package of its own: it imports nothing from ``connector`` or ``webhooks``."""
