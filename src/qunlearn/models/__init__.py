"""Stage 2, the models: pretraining and fine-tuning the embedded base, target and retrain models, and reading and
writing checkpoints (safetensors only)."""
