-- The seed document's gold monitoring query, verbatim: run once a training set is built,
--   python manage.py lake_sql -f datalake/sql/gold_samples.sql

-- Gold layer: Label distribution
SELECT
    label.execution_success,
    COUNT(*) as sample_count,
    COUNT(*) * 100.0 / SUM(COUNT(*)) OVER() as percentage
FROM gold.training_sets.stop_outcome
WHERE version = 'v1.0.0'
GROUP BY label.execution_success;
