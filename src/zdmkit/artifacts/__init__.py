"""Builders for the third-party artifacts the roles install."""
