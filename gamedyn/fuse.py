"""Fused stepping: chunks of steps compiled with ``torch.compile`` (work in progress)."""

MODES = ("auto", "on", "off")
