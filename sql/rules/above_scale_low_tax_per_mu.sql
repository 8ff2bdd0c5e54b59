-- Rule 1: 规上 firms whose two-year 亩均税收 is below $ratio × their industry's average.
-- Industry average for 2-digit 大类 g = Σ tax ÷ Σ land over the 规上 manufacturing
-- firm-years of g in Y-2 and Y-1 with a tax value and land > 0 (scale by each year's own
-- report). Fewer than $min_group_size distinct firms in g → the same ratio over all of them.
-- The firm-years are firm_panel's two years, one row each (firm_panel holds both side by side).
WITH panel_years AS (
    SELECT firm_id, division, $year_prev AS year, scale_prev AS scale, tax_prev AS tax_paid, land_prev AS land_mu
    FROM firm_panel
    UNION ALL
    SELECT firm_id, division, $year_last AS year, scale_last AS scale, tax_last AS tax_paid, land_last AS land_mu
    FROM firm_panel
),
contributions AS (
    SELECT firm_id, year, division, tax_paid, land_mu
    FROM panel_years
    WHERE scale = '规上'
      AND division BETWEEN $division_min AND $division_max
      AND tax_paid IS NOT NULL
      AND land_mu > 0
),
-- Sums in a fixed order: DuckDB adds in parallel, and a float sum in another order differs in
-- its last bits, so the same data would not give the same threshold from run to run.
division_average AS (
    SELECT division, sum(tax_paid ORDER BY firm_id, year) / sum(land_mu ORDER BY firm_id, year) AS average,
           count(DISTINCT firm_id) AS firms
    FROM contributions
    GROUP BY division
),
overall_average AS (
    SELECT sum(tax_paid ORDER BY firm_id, year) / sum(land_mu ORDER BY firm_id, year) AS average,
           count(DISTINCT firm_id) AS firms
    FROM contributions
),
judged AS (
    SELECT
        p.*,
        (p.tax_prev + p.tax_last) / (p.land_prev + p.land_last) AS firm_value,
        coalesce(da.firms, 0) >= $min_group_size AS own_group,
        CASE WHEN coalesce(da.firms, 0) >= $min_group_size THEN da.average ELSE oa.average END AS group_average,
        CASE WHEN coalesce(da.firms, 0) >= $min_group_size THEN da.firms ELSE oa.firms END AS group_firms
    FROM firm_panel p
    LEFT JOIN division_average da USING (division)
    CROSS JOIN overall_average oa
)
SELECT
    firm_id,
    'above_scale_low_tax_per_mu' AS rule_id,
    CASE
        WHEN scope_code <> 'in_scope' THEN scope_code
        WHEN scale_last <> '规上' THEN 'below_scale'
        WHEN tax_prev IS NULL OR tax_last IS NULL THEN 'tax_missing'
        WHEN land_prev IS NULL OR land_last IS NULL THEN 'land_missing'
        WHEN group_average IS NULL THEN 'no_average'
        WHEN strictly_below(firm_value, $ratio * group_average, $eps) THEN 'hit'
        ELSE 'pass'
    END AS reason_code,
    firm_value AS value,
    $ratio * group_average AS threshold,
    group_average AS industry_avg,
    CASE WHEN own_group THEN CAST(division AS VARCHAR) ELSE 'all' END AS industry_group,
    CASE WHEN own_group THEN industry_name || '（' || CAST(division AS VARCHAR) || '）'
         ELSE '全部规上制造业企业' END AS industry_group_name,
    group_firms,
    tax_per_mu_prev AS value_prev,
    tax_per_mu_last AS value_last,
    NULL::VARCHAR AS value_text,
    NULL::VARCHAR AS threshold_text,
    missing_tax_or_land(tax_prev, tax_last, land_prev, land_last, $year_prev, $year_last) AS detail,
    concat_ws(',', $year_prev, $year_last) AS years,
    NULL::VARCHAR AS value_prev_text,
    NULL::VARCHAR AS value_last_text,
    NULL::VARCHAR AS source
FROM judged
