"""CLI command groups. Each module defines ``register(app)`` adding its commands to the typer app."""
