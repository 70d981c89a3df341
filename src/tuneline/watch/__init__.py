"""`tuneline watch`: poll the data sources (and S3 prefixes) and rerun the pipeline on a change."""
