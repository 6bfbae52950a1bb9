"""The box's SQLite database."""
