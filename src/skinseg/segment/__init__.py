"""Segmentation: inference engine, post-processing and classical methods."""
