"""Running the pipeline under an existing orchestrator (Prefect: extra `prefect`)."""
