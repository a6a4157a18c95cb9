"""ex-color."""
