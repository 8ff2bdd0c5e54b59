-- firm_years: grain (firm_id), every registered enterprise with its registry columns, the list
-- year's two data years side by side (_prev = Y-2, _last = Y-1): every figure that the rules, the
-- list and the advisory data check read, and the scope shared by rules 1-3.  firm_panel
-- (20_firm_panel.sql) is the part the rules, the list and the database see; the rest (revenue,
-- value added, electricity, the energy of Y-2, the basis of a computed grade, held_*) only the
-- data check, the key energy users and rule 2 read.
-- held_prev / held_last: the firm has a row in some input table in that year.
-- scope_code: 'in_scope' or the reason code for why rules 1-3 cannot judge the firm.
-- Land is the sum of the year's parcels, own and leased alike (in_land_year: screen._land_years,
-- summed in the table's row order); a firm-year with a rejected parcel row has unknown land
-- (NULL), since its total would be understated.
-- One hash join per input table and year against the registry (every input row names a
-- registered firm: validation rejects the others), instead of a UNION of the keys and a join
-- per table; one table, not a second copy for firm_panel: measured at about half the CPU and
-- 250 MB less on a province (docs/run-performance.md).
CREATE OR REPLACE TABLE firm_years AS
WITH firm AS (
    SELECT e.*, TRY_CAST(left(e.industry_code, 2) AS INTEGER) AS division  -- lint: structural number (大类 = first 2 digits)
    FROM in_enterprises e
),
scoped AS (
    SELECT *, rules_scope(division, established, $division_min, $division_max, $new_firm_cutoff) AS rules_scope
    FROM firm
)
SELECT
    e.firm_id, e.uscc, e.name, e.township, e.industry_code, e.division, d.name AS industry_name, e.established,
    CASE WHEN e.rules_scope = 'in_scope' AND sl.scale IS NULL THEN 'no_stats' ELSE e.rules_scope END AS scope_code,
    (sp.firm_id IS NOT NULL OR tp.firm_id IS NOT NULL OR lp.firm_id IS NOT NULL OR ip.firm_id IS NOT NULL
     OR gp.firm_id IS NOT NULL OR vp.firm_id IS NOT NULL OR cp.firm_id IS NOT NULL) AS held_prev,
    (sl.firm_id IS NOT NULL OR tl.firm_id IS NOT NULL OR ll.firm_id IS NOT NULL OR il.firm_id IS NOT NULL
     OR gl.firm_id IS NOT NULL OR vl.firm_id IS NOT NULL OR cl.firm_id IS NOT NULL) AS held_last,
    sp.scale AS scale_prev, sl.scale AS scale_last,
    sp.revenue AS revenue_prev, sl.revenue AS revenue_last,
    sp.value_added AS value_added_prev, sl.value_added AS value_added_last,
    tp.tax_paid AS tax_prev, tl.tax_paid AS tax_last,
    CASE WHEN ip.firm_id IS NULL THEN lp.land_mu END AS land_prev,
    CASE WHEN il.firm_id IS NULL THEN ll.land_mu END AS land_last,
    tp.tax_paid / CASE WHEN ip.firm_id IS NULL THEN lp.land_mu END AS tax_per_mu_prev,
    tl.tax_paid / CASE WHEN il.firm_id IS NULL THEN ll.land_mu END AS tax_per_mu_last,
    ll.all_leased AS all_leased_last, ll.parcels AS parcels_last,
    gp.energy_tce AS energy_prev, gl.energy_tce AS energy_last,
    gp.electricity AS electricity_prev, gl.electricity AS electricity_last,
    vp.grade AS grade_prev, vl.grade AS grade_last,
    cp.grade AS computed_grade_prev, cl.grade AS computed_grade_last,
    cp.basis AS computed_basis_prev, cl.basis AS computed_basis_last
FROM scoped e
LEFT JOIN ref_divisions d ON d.division = e.division
LEFT JOIN in_stats sp ON sp.firm_id = e.firm_id AND sp.year = $year_prev
LEFT JOIN in_stats sl ON sl.firm_id = e.firm_id AND sl.year = $year_last
LEFT JOIN in_tax tp ON tp.firm_id = e.firm_id AND tp.year = $year_prev
LEFT JOIN in_tax tl ON tl.firm_id = e.firm_id AND tl.year = $year_last
LEFT JOIN in_land_year lp ON lp.firm_id = e.firm_id AND lp.year = $year_prev
LEFT JOIN in_land_year ll ON ll.firm_id = e.firm_id AND ll.year = $year_last
LEFT JOIN in_land_incomplete ip ON ip.firm_id = e.firm_id AND ip.year = $year_prev
LEFT JOIN in_land_incomplete il ON il.firm_id = e.firm_id AND il.year = $year_last
LEFT JOIN in_energy gp ON gp.firm_id = e.firm_id AND gp.year = $year_prev
LEFT JOIN in_energy gl ON gl.firm_id = e.firm_id AND gl.year = $year_last
LEFT JOIN in_evaluations vp ON vp.firm_id = e.firm_id AND vp.year = $year_prev
LEFT JOIN in_evaluations vl ON vl.firm_id = e.firm_id AND vl.year = $year_last
LEFT JOIN in_computed_grades cp ON cp.firm_id = e.firm_id AND cp.year = $year_prev
LEFT JOIN in_computed_grades cl ON cl.firm_id = e.firm_id AND cl.year = $year_last;
