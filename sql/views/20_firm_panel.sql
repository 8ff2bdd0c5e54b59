-- firm_panel: grain (firm_id), every registered enterprise, with the list year's two data
-- years side by side (prev = Y-2, last = Y-1, from firm_years) and the scope shared by rules 1-3.
-- scope_code: 'in_scope' or the reason code for why rules 1-3 cannot judge the firm.
CREATE OR REPLACE TABLE firm_panel AS
WITH firm AS (
    SELECT e.*, TRY_CAST(left(e.industry_code, 2) AS INTEGER) AS division  -- lint: structural number (大类 = first 2 digits)
    FROM in_enterprises e
),
scoped AS (
    SELECT *, rules_scope(division, established, $division_min, $division_max, $new_firm_cutoff) AS rules_scope
    FROM firm
)
SELECT
    f.firm_id, f.uscc, f.name, f.township, f.industry_code, f.division, d.name AS industry_name, f.established,
    y.scale_prev, y.scale_last,
    y.tax_prev, y.tax_last,
    y.land_prev, y.land_last,
    y.tax_per_mu_prev, y.tax_per_mu_last,
    y.grade_prev, y.grade_last,
    y.computed_grade_prev, y.computed_grade_last,
    y.energy_last, y.all_leased_last, y.parcels_last,
    CASE WHEN f.rules_scope = 'in_scope' AND y.scale_last IS NULL THEN 'no_stats' ELSE f.rules_scope END AS scope_code
FROM scoped f
JOIN firm_years y USING (firm_id)
LEFT JOIN ref_divisions d ON d.division = f.division;
