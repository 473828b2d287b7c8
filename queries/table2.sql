-- Table 2 of Park et al. (Faraday Discuss. 2024): compositions per arity and category.
-- Counts come from the exact per-shard counts, so they hold for lakes that store only
-- allowed + known rows (the full quaternary space) as well.
WITH totals AS (
    SELECT arity,
           sum(compositions) AS total,
           sum(standard) AS standard,
           sum(missing) AS missing,
           sum(interesting) AS interesting,
           sum(unlikely) AS unlikely
    FROM composition_counts
    GROUP BY arity
)
SELECT arity,
       total AS compositions,
       standard + missing AS allowed,
       round(100.0 * (standard + missing) / total, 2) AS "allowed %",
       standard,
       round(100.0 * standard / total, 4) AS "standard %",
       missing,
       round(100.0 * missing / total, 2) AS "missing %",
       interesting,
       round(100.0 * interesting / total, 4) AS "interesting %",
       unlikely,
       round(100.0 * unlikely / total, 2) AS "unlikely %"
FROM totals
ORDER BY arity;
