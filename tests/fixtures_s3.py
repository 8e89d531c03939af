"""S3 fixtures (moto in server mode): filled in by the storage work."""
