"""Self-modification commands."""
