-- Rule 2: 规下 firms with land ≥ $min_land_mu in Y-1 graded in $grades in both Y-2 and Y-1.
-- $grade_source picks the grades: the official evaluations, grades computed by the engine
-- (computed_grade_*), or the official grade falling back to the computed one.  A computed grade
-- taken from a finalized (定稿) evaluation carries its basis (firm_years.computed_basis_*), which
-- the evidence (detail) names.  It reads firm_years: firm_panel's columns and that basis.
WITH graded AS (
    SELECT *,
           CASE $grade_source WHEN 'official' THEN grade_prev WHEN 'computed' THEN computed_grade_prev
                ELSE coalesce(grade_prev, computed_grade_prev) END AS g_prev,
           CASE $grade_source WHEN 'official' THEN grade_last WHEN 'computed' THEN computed_grade_last
                ELSE coalesce(grade_last, computed_grade_last) END AS g_last
    FROM firm_years
),
based AS (
    SELECT *,
           CASE WHEN grade_source_of(g_prev, grade_prev, $grade_source) = 'computed' THEN computed_basis_prev END AS b_prev,
           CASE WHEN grade_source_of(g_last, grade_last, $grade_source) = 'computed' THEN computed_basis_last END AS b_last
    FROM graded
)
SELECT
    firm_id,
    'below_scale_consecutive_c_grade' AS rule_id,
    CASE
        WHEN scope_code <> 'in_scope' THEN scope_code
        WHEN scale_last <> '规下' THEN 'above_scale'
        WHEN land_last IS NULL THEN 'land_missing'
        WHEN strictly_below(land_last, $min_land_mu, $eps) THEN 'small_land'
        WHEN g_prev IS NULL OR g_last IS NULL THEN 'grade_missing'
        WHEN list_contains($grades, g_prev) AND list_contains($grades, g_last) THEN 'hit'
        ELSE 'pass'
    END AS reason_code,
    NULL::DOUBLE AS value,
    NULL::DOUBLE AS threshold,
    NULL::DOUBLE AS industry_avg,
    NULL::VARCHAR AS industry_group,
    NULL::VARCHAR AS industry_group_name,
    NULL::BIGINT AS group_firms,
    NULL::DOUBLE AS value_prev,
    NULL::DOUBLE AS value_last,
    concat_ws(',', coalesce(g_prev, ''), coalesce(g_last, '')) AS value_text,
    array_to_string($grades, ',') AS threshold_text,
    CASE WHEN land_last IS NULL THEN CAST($year_last AS VARCHAR)
         WHEN g_prev IS NULL OR g_last IS NULL THEN missing_years(g_prev, g_last, $year_prev, $year_last)
         WHEN scope_code = 'in_scope' AND scale_last = '规下' THEN nullif(concat_ws('；', b_prev, b_last), '') END AS detail,
    concat_ws(',', $year_prev, $year_last) AS years,
    g_prev AS value_prev_text,
    g_last AS value_last_text,
    concat_ws(',', grade_source_of(g_prev, grade_prev, $grade_source), grade_source_of(g_last, grade_last, $grade_source))
        AS source
FROM based
