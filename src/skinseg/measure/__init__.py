"""Measurements: epidermal thickness, DEJ shape, nerve crossings, metrics."""
