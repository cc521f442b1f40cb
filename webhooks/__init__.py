"""The webhook receiver (Flask) and the worker that applies what it receives."""
