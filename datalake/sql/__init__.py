"""Analysts' SQL over the lake: ``lake_sql`` and the files of queries it runs."""
