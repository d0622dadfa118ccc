"""Publish a folder to S3: build artifacts and static websites.

Python API::

    from drone_s3_sync import Settings, sync
    summary = sync(Settings.create(bucket="my-site", source="public", delete=True))
"""

__version__ = "2.0.0"

__all__ = ["Settings", "sync", "__version__"]


def __getattr__(name):
    # Imported lazily so that `drone-s3-sync --help` does not pay for boto3.
    if name == "Settings":
        from .config import Settings

        return Settings
    if name == "sync":
        from .pipeline import sync

        return sync
    raise AttributeError(name)
