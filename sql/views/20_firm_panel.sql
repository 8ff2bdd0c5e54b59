-- firm_panel: grain (firm_id), every registered enterprise, with the list year's two data
-- years side by side (prev = Y-2, last = Y-1) and the scope shared by rules 1-3.
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
    p.scale AS scale_prev, l.scale AS scale_last,
    p.tax_paid AS tax_prev, l.tax_paid AS tax_last,
    p.land_mu AS land_prev, l.land_mu AS land_last,
    p.tax_per_mu AS tax_per_mu_prev, l.tax_per_mu AS tax_per_mu_last,
    p.grade AS grade_prev, l.grade AS grade_last,
    p.computed_grade AS computed_grade_prev, l.computed_grade AS computed_grade_last,
    l.energy_tce AS energy_last, l.all_leased AS all_leased_last, l.parcels AS parcels_last,
    CASE WHEN f.rules_scope = 'in_scope' AND l.scale IS NULL THEN 'no_stats' ELSE f.rules_scope END AS scope_code
FROM scoped f
LEFT JOIN firm_year p ON p.firm_id = f.firm_id AND p.year = $year_prev
LEFT JOIN firm_year l ON l.firm_id = f.firm_id AND l.year = $year_last
LEFT JOIN ref_divisions d ON d.division = f.division;
