-- Shared helpers for the rule SQL.
-- "Strictly below/above" with a relative tolerance: values within $eps·|t| of the
-- threshold t count as equal to it, so an exact boundary is never a hit.
CREATE OR REPLACE MACRO strictly_below(v, t, eps) AS v < t AND abs(v - t) > eps * abs(t);
CREATE OR REPLACE MACRO strictly_above(v, t, eps) AS v > t AND abs(v - t) > eps * abs(t);

-- The scope shared by rules 1-3 (the contract): manufacturing (2-digit 大类 between division_min
-- and division_max) and not established on or after new_firm_cutoff (1 January of Y-2); an
-- unknown industry may be in scope ('industry_unknown': the rules cannot judge the firm).
-- 'in_scope' or the reason code.  Early warning (screening/warn) asks the same question here.
CREATE OR REPLACE MACRO rules_scope(division, established, division_min, division_max, new_firm_cutoff) AS CASE
    WHEN division IS NOT NULL AND division NOT BETWEEN division_min AND division_max THEN 'not_manufacturing'
    WHEN established >= new_firm_cutoff THEN 'new_firm'
    WHEN division IS NULL THEN 'industry_unknown'
    ELSE 'in_scope'
END;

-- The energy limit of each product in force on `day` (rule 4: 31 December of Y-1): effective
-- from that day or earlier and not ended before it (effective_to is the last day in force).
-- Several in force for one product: the strictest (lowest) applies, whatever its sign.
-- Rule 4 and early warning's product feature both read the limits through this.
CREATE OR REPLACE MACRO limits_in_force(day) AS TABLE
    SELECT product, product_name, standard, unit, "limit", verified
    FROM energy_limits
    WHERE effective_from <= day
      AND (effective_to IS NULL OR effective_to >= day)
    QUALIFY row_number() OVER (PARTITION BY product ORDER BY "limit", standard) = 1;

-- How far a unit consumption lies above its limit, as a share of the limit's size (negative:
-- below it); NULL for a zero limit, which has no size to compare with.
CREATE OR REPLACE MACRO limit_excess(v, lim) AS (v - lim) / nullif(abs(lim), 0);

-- The status each reason code stands for. A code missing here yields NULL, which the
-- audit rejects, so a new code cannot silently become a status.
CREATE OR REPLACE MACRO status_for(code) AS CASE
    WHEN code IN ('hit', 'hit_unverified') THEN 'hit'
    WHEN code = 'pass' THEN 'pass'
    WHEN code IN ('not_manufacturing', 'new_firm', 'below_scale', 'above_scale',
                  'small_land', 'no_limited_product') THEN 'not_applicable'
    WHEN code IN ('industry_unknown', 'no_stats', 'tax_missing', 'land_missing',
                  'grade_missing', 'no_average', 'product_rejected') THEN 'insufficient_data'
END;

-- The years whose value is missing, e.g. '2020、2021'.
CREATE OR REPLACE MACRO missing_years(v_prev, v_last, y_prev, y_last) AS concat_ws('、',
    CASE WHEN v_prev IS NULL THEN CAST(y_prev AS VARCHAR) END,
    CASE WHEN v_last IS NULL THEN CAST(y_last AS VARCHAR) END);

-- Which years lack tax (checked first) or land, for a rule that needs both in both years.
CREATE OR REPLACE MACRO missing_tax_or_land(tax_prev, tax_last, land_prev, land_last, y_prev, y_last) AS CASE
    WHEN tax_prev IS NULL OR tax_last IS NULL THEN missing_years(tax_prev, tax_last, y_prev, y_last)
    WHEN land_prev IS NULL OR land_last IS NULL THEN missing_years(land_prev, land_last, y_prev, y_last)
END;

-- Where a grade rule 2 used came from: 'official', 'computed', or '' when there is none.
CREATE OR REPLACE MACRO grade_source_of(chosen, official, mode) AS CASE
    WHEN chosen IS NULL THEN ''
    WHEN mode = 'official' OR (mode = 'official_else_computed' AND official IS NOT NULL) THEN 'official'
    ELSE 'computed'
END;
