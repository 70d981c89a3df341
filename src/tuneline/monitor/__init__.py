"""Production monitoring: drift of live traffic against what a version was trained on."""
