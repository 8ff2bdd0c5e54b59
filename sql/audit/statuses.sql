-- Audit after every run (returns the bad rows; none expected):
--  * every (enterprise, enabled rule) has exactly one result row;
--  * its status is one of hit / pass / insufficient_data / not_applicable;
--  * every judgement carries its evidence: a numeric rule's hit or pass both its value and its
--    threshold, the grade rule's hit or pass the grade of each year, and an insufficient_data
--    row for a missing figure the years it is missing (in detail) -- a pass without them could
--    be a missing value read as "not below", which is never a pass.
-- The per-rule counts are checked first (cheap); the row-level comparison runs only
-- for a rule whose counts are off, to name the offending rows.
WITH enterprises AS (
    SELECT count(*) AS n FROM firm_panel
),
per_rule AS (
    SELECT r.rule_id,
           count(*) AS n,
           count(DISTINCT firm_id) AS firms,
           count(*) FILTER (WHERE status IN ('hit', 'pass', 'insufficient_data', 'not_applicable')) AS valid,
           count(*) FILTER (WHERE firm_id NOT IN (SELECT firm_id FROM firm_panel)) AS strangers
    FROM results r
    GROUP BY r.rule_id
),
expected_rules AS (
    SELECT unnest($rule_ids) AS rule_id
),
suspect AS (
    SELECT e.rule_id
    FROM expected_rules e
    LEFT JOIN per_rule p USING (rule_id)
    CROSS JOIN enterprises t
    WHERE p.rule_id IS NULL OR p.n <> t.n OR p.firms <> t.n OR p.valid <> t.n OR p.strangers > 0
),
expected AS (
    SELECT p.firm_id, s.rule_id FROM firm_panel p CROSS JOIN suspect s
),
counted AS (
    SELECT firm_id, rule_id, count(*) AS n,
           count(*) FILTER (WHERE status IN ('hit', 'pass', 'insufficient_data', 'not_applicable')) AS valid
    FROM results
    WHERE rule_id IN (SELECT rule_id FROM suspect)
    GROUP BY firm_id, rule_id
)
SELECT coalesce(e.firm_id, c.firm_id) AS firm_id, coalesce(e.rule_id, c.rule_id) AS rule_id,
       CASE WHEN c.firm_id IS NULL THEN 'missing'
            WHEN e.firm_id IS NULL THEN 'unexpected'
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
