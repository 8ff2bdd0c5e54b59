-- Audit after every run (returns the bad rows; none expected):
--  * every (enterprise, enabled rule) has exactly one result row;
--  * its status is one of hit / pass / insufficient_data / not_applicable;
--  * a numeric rule's hit carries both its value and its threshold.
WITH expected AS (
    SELECT p.uscc, r.rule_id
    FROM firm_panel p
    CROSS JOIN (SELECT unnest($rule_ids) AS rule_id) r
),
counted AS (
    SELECT uscc, rule_id, count(*) AS n,
           count(*) FILTER (WHERE status IN ('hit', 'pass', 'insufficient_data', 'not_applicable')) AS valid
    FROM results
    GROUP BY uscc, rule_id
)
SELECT coalesce(e.uscc, c.uscc) AS uscc, coalesce(e.rule_id, c.rule_id) AS rule_id,
       CASE WHEN c.uscc IS NULL THEN 'missing'
            WHEN e.uscc IS NULL THEN 'unexpected'
            WHEN c.n > 1 THEN 'duplicate'
            ELSE 'invalid_status' END AS problem
FROM expected e
FULL JOIN counted c ON c.uscc = e.uscc AND c.rule_id = e.rule_id
WHERE c.uscc IS NULL OR e.uscc IS NULL OR c.n <> 1 OR c.valid <> 1
UNION ALL
SELECT uscc, rule_id, 'hit_without_evidence' AS problem
FROM results
WHERE status = 'hit'
  AND rule_id <> 'below_scale_consecutive_c_grade'
  AND (value IS NULL OR threshold IS NULL)
