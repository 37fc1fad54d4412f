"""Stage 7, analysis: the summary table, the hierarchical bootstrap, the verdicts, the headline and contrasts,
the attacks' verdicts, and the mechanism's measurements."""
