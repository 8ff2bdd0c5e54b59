-- firm_year: grain (firm_id, year), every year present in any input table, with the
-- figures the rules and the list use (the full inputs stay in the in_* tables).
-- Land is the sum of the year's parcels, own and leased alike; a firm-year with a
-- rejected parcel row has unknown land (NULL), since its total would be understated.
CREATE OR REPLACE TABLE firm_year AS
WITH land_year AS (
    SELECT firm_id, year,
           sum(area_mu) AS land_mu,
           count(*) AS parcels,
           coalesce(sum(area_mu) FILTER (WHERE tenure = '租赁'), 0) AS leased_mu,
           bool_and(tenure = '租赁') AS all_leased
    FROM in_land
    GROUP BY firm_id, year
),
keys AS (
    SELECT firm_id, year FROM in_stats
    UNION SELECT firm_id, year FROM in_tax
    UNION SELECT firm_id, year FROM land_year
    UNION SELECT firm_id, year FROM in_land_incomplete
    UNION SELECT firm_id, year FROM in_energy
    UNION SELECT firm_id, year FROM in_evaluations
    UNION SELECT firm_id, year FROM in_computed_grades
)
SELECT
    k.firm_id, k.year,
    s.scale,
    t.tax_paid,
    CASE WHEN li.firm_id IS NULL THEN l.land_mu END AS land_mu,
    li.firm_id IS NOT NULL AS land_incomplete,
    l.parcels, l.leased_mu, l.all_leased,
    t.tax_paid / CASE WHEN li.firm_id IS NULL THEN l.land_mu END AS tax_per_mu,
    g.energy_tce, g.electricity,
    v.grade,
    cg.grade AS computed_grade,
    cg.basis AS computed_basis
FROM keys k
LEFT JOIN in_stats s USING (firm_id, year)
LEFT JOIN in_tax t USING (firm_id, year)
LEFT JOIN land_year l USING (firm_id, year)
LEFT JOIN in_land_incomplete li USING (firm_id, year)
LEFT JOIN in_energy g USING (firm_id, year)
LEFT JOIN in_evaluations v USING (firm_id, year)
LEFT JOIN in_computed_grades cg USING (firm_id, year);
