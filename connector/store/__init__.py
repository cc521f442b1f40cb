"""What the connector remembers between runs: the database, its schema and repositories."""
