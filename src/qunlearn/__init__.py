"""qunlearn: does LLM unlearning survive quantization? (Zhang et al., ICLR 2025, reproduced and extended)."""

__version__ = "0.1.0"
