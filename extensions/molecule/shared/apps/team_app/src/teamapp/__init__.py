"""A small team service: a dashboard behind a token, rendered with Jinja."""
