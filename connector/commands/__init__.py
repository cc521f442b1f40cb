"""The sub-commands of ``spm-connector``; ``connector.cli`` assembles them."""
