"""Networks (MONAI builders), model files (safetensors + JSON header), registry."""
