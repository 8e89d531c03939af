"""Shared machinery of the jobs: configuration, session, lake paths, checks, publishing."""
