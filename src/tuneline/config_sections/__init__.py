"""The pipeline config's sections, grouped by stage; import them from `tuneline.config`."""
