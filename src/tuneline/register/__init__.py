"""Stages 7 and 8, track and register: log the run to MLflow; register what passed."""
