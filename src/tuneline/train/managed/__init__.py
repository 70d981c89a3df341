"""Managed fine-tuning backends: the provider trains, tuneline uploads, polls and registers."""
