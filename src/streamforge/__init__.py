"""StreamForge."""
