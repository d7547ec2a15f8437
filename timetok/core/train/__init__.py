"""Training: Lightning modules, data modules, the shared runner."""
