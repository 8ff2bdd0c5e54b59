-- firm_years: grain (firm_id), every registered enterprise, with the figures of the list year's
-- two data years side by side (_prev = Y-2, _last = Y-1) that the rules, the list and the
-- advisory data check read (the full inputs stay in the in_* tables until firm_panel is built).
-- held_prev / held_last: the firm has a row in some input table in that year.
-- Land is the sum of the year's parcels, own and leased alike (in_land_year: screen._land_years,
-- summed in the table's row order); a firm-year with a rejected parcel row has unknown land
-- (NULL), since its total would be understated.
-- One hash join per input table and year against the registry (every input row names a
-- registered firm: validation rejects the others), instead of a UNION of the keys and a join
-- per table: measured at about half the CPU on a province (docs/run-performance.md).
CREATE OR REPLACE TABLE firm_years AS
SELECT
    e.firm_id,
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
FROM in_enterprises e
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
