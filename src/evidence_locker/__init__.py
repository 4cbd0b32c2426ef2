"""Evidence Locker: digital evidence management for police body-worn video."""

__version__ = "0.1.0"
