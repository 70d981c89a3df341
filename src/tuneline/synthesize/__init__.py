"""Stage 2, synthesize: turn records into grounded facts with question phrasings."""
