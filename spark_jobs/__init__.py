"""PySpark jobs of the Robson data lake: silver (and later gold) layers.

This package never imports Django, ``datalake`` or ``api``: it meets the Django side only
at files on the lake and at the ``spark-submit spark_jobs/main.py ...`` command line.
"""
