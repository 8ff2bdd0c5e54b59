-- firm_years: grain (firm_id), every registered enterprise with its registry columns, the list
-- year's two data years side by side (_prev = Y-2, _last = Y-1): every figure that the rules, the
-- list and the advisory data check read, and the scope shared by rules 1-3.  firm_panel
-- (20_firm_panel.sql) is the part the rules, the list and the database see; the rest (revenue,
-- value added, electricity, the energy of Y-2, the basis of a computed grade, held_*) only the
-- data check, the key energy users and rule 2 read.
-- in_firm_figures (screen._firm_figures): one row per registered enterprise, each input table's
-- row of the firm in Y-2 and in Y-1 already placed beside the registry columns (a table has at
-- most one row per firm and year, placed by the firm's position in the registry: no join).
-- held_prev / held_last: the firm has a row in some input table in that year.
-- scope_code: 'in_scope' or the reason code for why rules 1-3 cannot judge the firm.
-- Land is the sum of the year's parcels, own and leased alike (screen._land_years, summed in the
-- table's row order); a firm-year with a rejected parcel row (incomplete_*) has unknown land
-- (NULL), since its total would be understated.
CREATE OR REPLACE TABLE firm_years AS
WITH firm AS (
    SELECT f.*, TRY_CAST(left(f.industry_code, 2) AS INTEGER) AS division  -- lint: structural number (大类 = first 2 digits)
    FROM in_firm_figures f
),
scoped AS (
    SELECT *, rules_scope(division, established, $division_min, $division_max, $new_firm_cutoff) AS rules_scope,
           CASE WHEN NOT incomplete_prev THEN land_mu_prev END AS land_prev,
           CASE WHEN NOT incomplete_last THEN land_mu_last END AS land_last
    FROM firm
)
SELECT
    e.firm_id, e.uscc, e.name, e.township, e.industry_code, e.division, d.name AS industry_name, e.established,
    CASE WHEN e.rules_scope = 'in_scope' AND e.scale_last IS NULL THEN 'no_stats' ELSE e.rules_scope END AS scope_code,
    e.held_prev, e.held_last,
    e.scale_prev, e.scale_last,
    e.revenue_prev, e.revenue_last,
    e.value_added_prev, e.value_added_last,
    e.tax_prev, e.tax_last,
    e.land_prev, e.land_last,
    e.tax_prev / e.land_prev AS tax_per_mu_prev,
    e.tax_last / e.land_last AS tax_per_mu_last,
    e.all_leased_last, e.parcels_last,
    e.energy_prev, e.energy_last,
    e.electricity_prev, e.electricity_last,
    e.grade_prev, e.grade_last,
    e.computed_grade_prev, e.computed_grade_last,
    e.computed_basis_prev, e.computed_basis_last
FROM scoped e
LEFT JOIN ref_divisions d ON d.division = e.division;
