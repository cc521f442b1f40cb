"""The calculation, pure: plain functions over frozen models; no I/O, no clock, no environment."""
