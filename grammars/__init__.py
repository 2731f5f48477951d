"""The grammars shipped with smtplogscan, one module per log format."""
