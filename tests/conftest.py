"""Shared pytest configuration: float64 by default, deterministic seeds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# The suite's tensors are small: one intra-op thread is faster than two fighting over the
# CI machine's 2 cores (and than oversubscription when pytest or helpers run in parallel).
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tmp_spec(tmp_path):
    """Write a spec text to a temporary YAML file and return its path."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return write
