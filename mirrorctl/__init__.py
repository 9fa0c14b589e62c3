"""mirrorctl: declarative, verifiable package mirrors for air-gapped developer workspaces."""

__version__ = "0.1.0"
