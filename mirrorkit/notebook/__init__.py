"""The notebook layer: what the runbook notebooks call, their displays and records."""
