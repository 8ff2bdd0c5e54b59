-- Rule 3: 规下 firms with land ≥ $min_land_mu in Y-1 whose 亩均税收 is below $threshold
-- in both Y-2 and Y-1. value = the higher of the two years (both are below iff it is).
SELECT
    firm_id,
    'below_scale_consecutive_low_tax_per_mu' AS rule_id,
    CASE
        WHEN scope_code <> 'in_scope' THEN scope_code
        WHEN scale_last <> '规下' THEN 'above_scale'
        WHEN land_last IS NULL THEN 'land_missing'
        WHEN strictly_below(land_last, $min_land_mu, $eps) THEN 'small_land'
        WHEN tax_prev IS NULL OR tax_last IS NULL THEN 'tax_missing'
        WHEN land_prev IS NULL THEN 'land_missing'
        WHEN strictly_below(tax_per_mu_prev, $threshold, $eps)
         AND strictly_below(tax_per_mu_last, $threshold, $eps) THEN 'hit'
        ELSE 'pass'
    END AS reason_code,
    greatest(tax_per_mu_prev, tax_per_mu_last) AS value,
    $threshold AS threshold,
    NULL::DOUBLE AS industry_avg,
    NULL::VARCHAR AS industry_group,
    NULL::VARCHAR AS industry_group_name,
    NULL::BIGINT AS group_firms,
    tax_per_mu_prev AS value_prev,
    tax_per_mu_last AS value_last,
    NULL::VARCHAR AS value_text,
    NULL::VARCHAR AS threshold_text,
    missing_tax_or_land(tax_prev, tax_last, land_prev, land_last, $year_prev, $year_last) AS detail,
    concat_ws(',', $year_prev, $year_last) AS years,
    NULL::VARCHAR AS value_prev_text,
    NULL::VARCHAR AS value_last_text,
    NULL::VARCHAR AS source
FROM firm_panel
