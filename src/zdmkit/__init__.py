"""Zero-downtime migration toolkit: demo app, data migration engine and lab tools."""

__version__ = "0.1.0"
