"""Configuration: the parameter file, its declared model and its validation (nothing here talks to a server)."""
