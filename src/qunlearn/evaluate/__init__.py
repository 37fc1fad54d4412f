"""Stage 5, evaluation with MUSE's metrics: the batched evaluator, the metrics' arithmetic, and the
one-at-a-time oracle the evaluator is tested against."""
