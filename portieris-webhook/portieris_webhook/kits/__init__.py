"""Small generic parts with no domain imports: bounded maps, logs, JSON nesting checks, background tasks."""
