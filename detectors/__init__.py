"""Detectors: specs the compiler reads without loading models, and the implementations behind them."""

from detectors.base import Detector, DetectorError, DetectorResult, Finding
from detectors.specs import SPECS, CostClass, DetectorSettings, DetectorSpec

__all__ = [
    "SPECS",
    "CostClass",
    "Detector",
    "DetectorError",
    "DetectorResult",
    "DetectorSettings",
    "DetectorSpec",
    "Finding",
]
