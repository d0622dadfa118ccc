"""Publish a folder to S3: build artifacts and static websites."""

__version__ = "2.0.0.dev0"
