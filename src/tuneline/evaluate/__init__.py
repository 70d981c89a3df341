"""Stage 6, evaluate: answer every set with each variant and score it; the gate reads that."""
