"""Phantoms with exact ground truth: OCT skin volumes and skin-biopsy images."""
