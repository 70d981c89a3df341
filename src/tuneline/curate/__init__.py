"""Stage 4, curate: clean, mask PII, dedup, split without leakage, and export the training data."""
