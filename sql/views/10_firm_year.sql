-- firm_year: grain (uscc, year), every year present in any input table.
-- Land is the sum of the year's parcels, own and leased alike; a firm-year with a
-- rejected parcel row has unknown land (NULL), since its total would be understated.
CREATE OR REPLACE TABLE firm_year AS
WITH land_year AS (
    SELECT uscc, year,
           sum(area_mu) AS land_mu,
           count(*) AS parcels,
           coalesce(sum(area_mu) FILTER (WHERE tenure = '租赁'), 0) AS leased_mu,
           bool_and(tenure = '租赁') AS all_leased
    FROM in_land
    GROUP BY uscc, year
),
keys AS (
    SELECT uscc, year FROM in_stats
    UNION SELECT uscc, year FROM in_tax
    UNION SELECT uscc, year FROM land_year
    UNION SELECT uscc, year FROM in_land_incomplete
    UNION SELECT uscc, year FROM in_energy
    UNION SELECT uscc, year FROM in_evaluations
)
SELECT
    k.uscc, k.year,
    s.scale, s.revenue, s.value_added, s.employees, s.rd_expense, s.emissions,
    t.tax_paid,
    CASE WHEN li.uscc IS NULL THEN l.land_mu END AS land_mu,
    li.uscc IS NOT NULL AS land_incomplete,
    l.parcels, l.leased_mu, l.all_leased,
    t.tax_paid / CASE WHEN li.uscc IS NULL THEN l.land_mu END AS tax_per_mu,
    g.energy_tce, g.electricity,
    v.grade, v.score
FROM keys k
LEFT JOIN in_stats s USING (uscc, year)
LEFT JOIN in_tax t USING (uscc, year)
LEFT JOIN land_year l USING (uscc, year)
LEFT JOIN in_land_incomplete li USING (uscc, year)
LEFT JOIN in_energy g USING (uscc, year)
LEFT JOIN in_evaluations v USING (uscc, year);
