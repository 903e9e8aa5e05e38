"""Regularizers: one module each, registered in :data:`REGULARIZERS` (every module is imported)."""

from typing import Any

import torch

from ..discover import import_all
from .base import REGULARIZERS, Regularizer

import_all(__name__, __path__)

from .gradient_penalty import PenaltyChoice, per_run_choice  # noqa: E402


def batch_key(config: dict[str, Any], game: type) -> dict[str, Any]:
    """What of a run's regularizer ``config`` must agree for runs to share a batch on ``game`` (a
    game class): its structural parameters, or one shared key for the regularizers a run may
    choose per run there (:func:`~gamedyn.regularizers.gradient_penalty.per_run_choice`)."""
    if per_run_choice(config, game):
        return {"name": "per_run_penalty"}
    return REGULARIZERS.get(config["name"]).structural(config)


def build(configs: list[dict[str, Any]], game: type, dtype: torch.dtype, device: str) -> Regularizer:
    """The regularizer of a batch whose runs have these ``configs`` (equal :func:`batch_key`)."""
    if per_run_choice(configs[0], game):
        return PenaltyChoice.of(configs, dtype, device)
    return REGULARIZERS.get(configs[0]["name"]).build(configs, dtype, device)


__all__ = ["REGULARIZERS", "Regularizer", "batch_key", "build"]
