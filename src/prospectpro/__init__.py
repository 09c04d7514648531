"""ProspectPro: durable business-discovery campaigns with live progress."""

__version__ = "0.1.0"
