"""Data-leak prevention: detectors, validators, policy packs. Pure: text in, findings out."""
