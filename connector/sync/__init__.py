"""Keeping the CRM right: the engine (the one orchestrator), the sync lock, the worker."""
