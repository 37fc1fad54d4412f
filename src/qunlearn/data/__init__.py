"""Stage 1, the data: the embedded benchmark's synthetic corpora in MUSE's format, MUSE's loader, the tokenizer,
the forget set's held-out split, and training batches."""
