-- Rule 4: any enterprise with a Y-1 product_energy row whose product has a limit in force
-- on $limit_date (31 December of Y-1). Hit when unit_consumption > limit for at least one
-- such product. Several limits in force for one product: the strictest (lowest) applies.
-- value/threshold describe the product furthest above (or closest to) its limit.
-- A hit resting on a limit not yet checked against the standard's official text (verified =
-- false in energy_limits.csv) is 'hit_unverified': a hit that says so in its reason.
-- The limits in force and the choice among several: limits_in_force (sql/views/00_macros.sql).
-- Missing data is never a pass: a Y-1 product_energy row rejected in validation
-- (in_product_energy_rejected) whose product has a limit in force, or whose product could not be
-- read (a limit may apply), makes the firm 'product_rejected' (insufficient_data) unless another
-- of its products exceeds its limit (a hit whatever the rejected row held). A rejected row of a
-- product with no limit in force changes nothing.
WITH measured AS (
    SELECT pe.firm_id, pe.product, pe.unit_consumption, l."limit", l.standard, l.verified,
           strictly_above(pe.unit_consumption, l."limit", $eps) AS exceeded,
           limit_excess(pe.unit_consumption, l."limit") AS excess,
           coalesce(l.product_name, pe.product) || '（' || pe.product || '）单位产品能耗'
               || printf('%.2f', pe.unit_consumption) || ' ' || l.unit
               || '，限额' || printf('%g', l."limit") || ' ' || l.unit || '（' || l.standard || '）' AS line
    FROM in_product_energy pe
    JOIN limits_in_force($limit_date) l ON l.product = pe.product
    WHERE pe.year = $year_last
),
per_firm AS (
    SELECT firm_id,
           bool_or(exceeded) AS any_exceeded,
           bool_and(verified) FILTER (WHERE exceeded) AS exceeded_verified,
           arg_max(unit_consumption, coalesce(excess, unit_consumption - "limit")) AS worst_value,
           arg_max("limit", coalesce(excess, unit_consumption - "limit")) AS worst_limit,
           arg_max(standard, coalesce(excess, unit_consumption - "limit")) AS worst_standard,
           count(*) AS products,
           string_agg(line, '；' ORDER BY product) FILTER (WHERE exceeded) AS exceeded_lines,
           string_agg(line, '；' ORDER BY product) AS all_lines
    FROM measured
    GROUP BY firm_id
),
unknown AS (
    SELECT firm_id, string_agg(DISTINCT line, '、' ORDER BY line) AS lines
    FROM (
        SELECT r.firm_id,
               CASE WHEN r.product IS NULL THEN '产品代码无法读取的数据行'
                    ELSE coalesce(l.product_name, r.product) || '（' || r.product || '）的数据行' END AS line
        FROM in_product_energy_rejected r
        LEFT JOIN limits_in_force($limit_date) l ON l.product = r.product
        WHERE r.year = $year_last AND (r.product IS NULL OR l.product IS NOT NULL)
    )
    GROUP BY firm_id
)
SELECT
    p.firm_id,
    'energy_limit_exceeded' AS rule_id,
    CASE WHEN f.any_exceeded AND NOT f.exceeded_verified THEN 'hit_unverified'
         WHEN f.any_exceeded THEN 'hit'
         WHEN u.firm_id IS NOT NULL THEN 'product_rejected'
         WHEN f.firm_id IS NULL THEN 'no_limited_product'
         ELSE 'pass' END AS reason_code,
    CASE WHEN f.any_exceeded OR u.firm_id IS NULL THEN f.worst_value END AS value,
    CASE WHEN f.any_exceeded OR u.firm_id IS NULL THEN f.worst_limit END AS threshold,
    NULL::DOUBLE AS industry_avg,
    NULL::VARCHAR AS industry_group,
    NULL::VARCHAR AS industry_group_name,
    NULL::BIGINT AS group_firms,
    NULL::DOUBLE AS value_prev,
    NULL::DOUBLE AS value_last,
    NULL::VARCHAR AS value_text,
    CASE WHEN f.any_exceeded OR u.firm_id IS NULL THEN f.worst_standard END AS threshold_text,
    CASE WHEN f.any_exceeded THEN f.exceeded_lines WHEN u.firm_id IS NOT NULL THEN u.lines
         ELSE f.all_lines END AS detail,
    CAST($year_last AS VARCHAR) AS years,
    NULL::VARCHAR AS value_prev_text,
    NULL::VARCHAR AS value_last_text,
    NULL::VARCHAR AS source
FROM firm_panel p
LEFT JOIN per_firm f USING (firm_id)
LEFT JOIN unknown u USING (firm_id)
