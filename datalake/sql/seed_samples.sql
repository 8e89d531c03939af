-- The seed document's sample and monitoring queries, verbatim: run with
--   python manage.py lake_sql -f datalake/sql/seed_samples.sql

-- Success rate by client
SELECT
    client_id,
    COUNT(*) as total_executions,
    SUM(CASE WHEN status = 'EXECUTED' THEN 1 ELSE 0 END) as successful,
    SUM(CASE WHEN status = 'EXECUTED' THEN 1 ELSE 0 END) * 100.0 / COUNT(*) as success_rate_pct
FROM silver.stop_executions
WHERE date BETWEEN '2024-01-01' AND '2024-12-27'
GROUP BY client_id
ORDER BY success_rate_pct DESC;

-- Average slippage by symbol
SELECT
    symbol,
    AVG(slippage_pct) as avg_slippage_pct,
    PERCENTILE(slippage_pct, 0.5) as median_slippage_pct,
    PERCENTILE(slippage_pct, 0.95) as p95_slippage_pct
FROM silver.stop_executions
WHERE date BETWEEN '2024-01-01' AND '2024-12-27'
  AND slippage_pct IS NOT NULL
GROUP BY symbol
ORDER BY avg_slippage_pct ASC;

-- Bronze layer: Row count over time
SELECT date, COUNT(*) as row_count
FROM bronze.events
GROUP BY date
ORDER BY date DESC
LIMIT 30;

-- Silver layer: Null percentage
SELECT
    COUNT(*) as total_rows,
    COUNT(execution_id) as non_null_executions,
    COUNT(fill_price) as non_null_fill_prices,
    (COUNT(*) - COUNT(fill_price)) * 100.0 / COUNT(*) as null_fill_price_pct
FROM silver.stop_executions
WHERE date = '2024-12-27';

-- Bronze freshness (max lag)
SELECT
    CURRENT_TIMESTAMP - MAX(occurred_at) as max_lag
FROM bronze.events
WHERE date = '2024-12-27';

-- Silver freshness (job completion)
SELECT
    MAX(created_at) as last_silver_update,
    CURRENT_TIMESTAMP - MAX(created_at) as silver_lag
FROM silver.stop_executions
WHERE date = '2024-12-27';
