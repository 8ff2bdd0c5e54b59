-- Rule 2: 规下 firms with land ≥ $min_land_mu in Y-1 graded in $grades in both Y-2 and Y-1.
SELECT
    firm_id,
    'below_scale_consecutive_c_grade' AS rule_id,
    CASE
        WHEN scope_code <> 'in_scope' THEN scope_code
        WHEN scale_last <> '规下' THEN 'above_scale'
        WHEN land_last IS NULL THEN 'land_missing'
        WHEN strictly_below(land_last, $min_land_mu, $eps) THEN 'small_land'
        WHEN grade_prev IS NULL OR grade_last IS NULL THEN 'grade_missing'
        WHEN list_contains($grades, grade_prev) AND list_contains($grades, grade_last) THEN 'hit'
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
    concat_ws(',', coalesce(grade_prev, ''), coalesce(grade_last, '')) AS value_text,
    array_to_string($grades, ',') AS threshold_text,
    CASE WHEN grade_prev IS NULL OR grade_last IS NULL
         THEN missing_years(grade_prev, grade_last, $year_prev, $year_last) END AS detail,
    concat_ws(',', $year_prev, $year_last) AS years
FROM firm_panel
