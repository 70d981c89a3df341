"""Stage 4, curate: clean, mask PII, dedup, split without leakage, export training data."""
