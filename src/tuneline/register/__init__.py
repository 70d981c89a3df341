"""Stage 7, register (and track): log the run to MLflow, register a model that passed the gate."""
