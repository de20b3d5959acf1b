"""Fixtures shared by the detector tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from detectors.catalogue import resolve


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """A copy of the shipped prompt-injection model's folder, to change or break."""
    folder = tmp_path / "model"
    shutil.copytree(resolve("prompt-injection").path, folder)
    return folder
