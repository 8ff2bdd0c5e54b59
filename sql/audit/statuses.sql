-- Audit after every run (returns the bad rows; none expected):
--  * every (enterprise, enabled rule) has exactly one result row, and no other enterprise has one;
--  * its status is one of hit / pass / insufficient_data / not_applicable;
--  * every judgement carries its evidence: a numeric rule's hit or pass both its value and its
--    threshold, the grade rule's hit or pass the grade of each year, and an insufficient_data
--    row for a missing figure the years it is missing (in detail) -- a pass without them could
--    be a missing value read as "not below", which is never a pass.
-- Each firm's rows are checked first, in one pass over results grouped by firm (cheap): a firm
-- of the panel with exactly one row of every expected rule, all of a valid status, is right.
-- The row-level comparison runs only for the other firms (none expected), to name the
-- offending rows.  A firm has each of the R expected rules once iff it has R rows and they cover
-- all R rules (the set of rules it has, as bits of `rules`; a rule set of more than 100 rules
-- sends every firm to the row-level comparison, which is exact on its own).
WITH expected_rules AS (
    SELECT unnest($rule_ids) AS rule_id, generate_subscripts($rule_ids, 1) AS bit
),
per_firm AS (
    SELECT r.firm_id,
           count(*) AS n,
           count(*) FILTER (WHERE status IN ('hit', 'pass', 'insufficient_data', 'not_applicable')) AS valid,
           bit_or(CASE WHEN x.bit <= 100 THEN 1::HUGEINT << (x.bit - 1) END) AS rules
    FROM results r
    LEFT JOIN expected_rules x ON x.rule_id = r.rule_id::VARCHAR
    GROUP BY r.firm_id
),
suspect AS (
    SELECT coalesce(p.firm_id, f.firm_id) AS firm_id
    FROM firm_panel p
    FULL JOIN per_firm f ON f.firm_id = p.firm_id
    WHERE p.firm_id IS NULL OR f.firm_id IS NULL
       OR f.n <> len($rule_ids) OR f.valid <> len($rule_ids)
       OR len($rule_ids) > 100 OR f.rules IS DISTINCT FROM (1::HUGEINT << least(len($rule_ids), 100)) - 1
),
expected AS (
    SELECT p.firm_id, x.rule_id
    FROM firm_panel p
    CROSS JOIN expected_rules x
    WHERE p.firm_id IN (SELECT firm_id FROM suspect)
),
counted AS (
    SELECT firm_id, rule_id::VARCHAR AS rule_id, count(*) AS n,
           count(*) FILTER (WHERE status IN ('hit', 'pass', 'insufficient_data', 'not_applicable')) AS valid
    FROM results
    WHERE firm_id IN (SELECT firm_id FROM suspect) OR firm_id IS NULL  -- a row naming no firm is suspect (IN never matches NULL)
    GROUP BY firm_id, rule_id
)
SELECT coalesce(e.firm_id, c.firm_id) AS firm_id, coalesce(e.rule_id, c.rule_id) AS rule_id,
       CASE WHEN e.firm_id IS NULL THEN 'unexpected'  -- first: a counted row may name no firm
            WHEN c.n IS NULL THEN 'missing'
            WHEN c.n > 1 THEN 'duplicate'
            ELSE 'invalid_status' END AS problem
FROM expected e
FULL JOIN counted c ON c.firm_id = e.firm_id AND c.rule_id = e.rule_id
WHERE c.firm_id IS NULL OR e.firm_id IS NULL OR c.n <> 1 OR c.valid <> 1
UNION ALL
SELECT firm_id, rule_id, CAST(status AS VARCHAR) || '_without_evidence' AS problem
FROM results
WHERE status IN ('hit', 'pass')
  AND CASE WHEN rule_id = 'below_scale_consecutive_c_grade'
           THEN value_prev_text IS NULL OR value_last_text IS NULL OR threshold_text IS NULL
           ELSE value IS NULL OR threshold IS NULL END
UNION ALL
SELECT firm_id, rule_id, 'missing_data_without_years' AS problem
FROM results
WHERE status = 'insufficient_data'
  AND reason_code IN ('tax_missing', 'land_missing', 'grade_missing')
  AND (detail IS NULL OR detail = '')
