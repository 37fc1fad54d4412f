"""Stage 6, attacks other than quantization: the transforms, and their torch-free folder names and job settings."""
