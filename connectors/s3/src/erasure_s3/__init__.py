"""erasure-s3: the ``s3`` connector for AWS S3 and S3-compatible object storage."""

from .connector import S3Connector
from .settings import EEA_REGIONS, Rule, S3Settings

__all__ = ["EEA_REGIONS", "Rule", "S3Connector", "S3Settings"]
