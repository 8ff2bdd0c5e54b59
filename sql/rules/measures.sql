-- 差别化措施 (issue 16, item 3): one row per (firm, utility) that a policy in force on $on_date
-- reaches, from the grade history of the firms.
-- Inputs: history(uscc, year, grade, source) — one grade per firm and year, already merged
-- (screening.measures.merge_histories); policy_steps(policy_id, utility, grade, valid_from,
-- valid_to, from_years, surcharge, refund_share) — one row per step of rules/<set>/measures.yaml.
-- Consecutive years: the run of years ending at $grade_year in which the firm had the grade it has
-- in $grade_year, without a gap (a year with no grade, or another grade, ends the run): islands of
-- (year − row_number) over the firm's years in that grade.
-- Surcharge: the policy for (utility, grade) in force on $on_date (valid_from ≤ date ≤ valid_to, an
-- empty valid_to is open), at the step with the largest from_years not above the consecutive years.
-- Refund: the firm's grade in $grade_year − 1 had a policy with a refund in force both on $on_date and
-- on $previous_date (the same day of the previous year's period: the surcharge was then collected),
-- and its grade in $grade_year is better (a letter earlier: A < B < C < D).
WITH graded AS (
    SELECT uscc, year, grade, source,
           year - row_number() OVER (PARTITION BY uscc, grade ORDER BY year) AS island
    FROM history
    WHERE year <= $grade_year
),
latest AS (
    SELECT uscc, grade, source, island FROM graded WHERE year = $grade_year
),
streak AS (
    SELECT l.uscc, l.grade, l.source, count(*) AS consecutive_years, min(g.year) AS since_year
    FROM latest l
    JOIN graded g ON g.uscc = l.uscc AND g.grade = l.grade AND g.island = l.island
    GROUP BY l.uscc, l.grade, l.source
),
previous AS (
    SELECT uscc, grade AS previous_grade FROM history WHERE year = $grade_year - 1
),
in_force AS (
    SELECT * FROM policy_steps
    WHERE valid_from <= $on_date AND (valid_to IS NULL OR valid_to >= $on_date)
),
charged AS (
    SELECT s.uscc, p.utility, p.policy_id, p.surcharge, p.from_years,
           p.valid_from AS policy_from, p.valid_to AS policy_to
    FROM streak s
    JOIN in_force p ON p.grade = s.grade AND p.from_years <= s.consecutive_years
    QUALIFY row_number() OVER (PARTITION BY s.uscc, p.utility ORDER BY p.from_years DESC) = 1
),
refunded AS (
    SELECT DISTINCT s.uscc, p.utility, p.policy_id AS refund_policy_id, p.refund_share, v.previous_grade
    FROM streak s
    JOIN previous v ON v.uscc = s.uscc
    JOIN in_force p ON p.grade = v.previous_grade AND p.refund_share IS NOT NULL
    WHERE s.grade < v.previous_grade
      AND p.valid_from <= $previous_date AND (p.valid_to IS NULL OR p.valid_to >= $previous_date)
)
SELECT
    coalesce(c.uscc, r.uscc) AS uscc,
    coalesce(c.utility, r.utility) AS utility,
    s.grade, s.source AS grade_source, s.consecutive_years, s.since_year,
    c.policy_id, c.surcharge, c.from_years, c.policy_from, c.policy_to,
    r.refund_policy_id, r.refund_share, r.previous_grade
FROM charged c
FULL JOIN refunded r ON r.uscc = c.uscc AND r.utility = c.utility
JOIN streak s ON s.uscc = coalesce(c.uscc, r.uscc)
