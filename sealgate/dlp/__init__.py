"""Data-leak prevention: detectors, validators, policy packs and attachment text extraction.
Pure: text and bytes in, findings and verdicts out."""

from sealgate.dlp.engine import Engine, Scanner, scan_text
from sealgate.dlp.findings import Confidence, Finding, mask

__all__ = ["Confidence", "Engine", "Finding", "Scanner", "mask", "scan_text"]
