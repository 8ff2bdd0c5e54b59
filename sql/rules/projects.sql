-- 拟建项目节能审查 (seed 一.5): one row per project of the `projects` table.
-- 两高: the project's 2-digit 大类 is one of $two_high_divisions.
-- Intensity = energy_tce ÷ value_added (tce/万元), held against the stricter (lower) of the
-- Zhejiang and Wenzhou admission standards: strictly above is a hit, equal passes, no value
-- added (missing or 0) is insufficient data.
-- Authority by annual energy: strictly below $review_min_tce → below_review; from
-- $upper_min_tce on ('included') or strictly above it ('excluded') → upper; else county.
WITH judged AS (
    SELECT
        p.*,
        substr(p.industry_code, 1, 2) AS division, -- lint: structural number (the 2-digit 大类 of a GB/T 4754 code)
        p.energy_tce / nullif(p.value_added, 0) AS intensity,
        least($standard_zhejiang, $standard_wenzhou) AS standard
    FROM projects p
),
coded AS (
    SELECT
        *,
        list_contains($two_high_divisions, division) AS two_high,
        CASE
            WHEN value_added IS NULL OR value_added = 0 THEN 'value_added_missing'
            WHEN strictly_above(intensity, standard, $eps) THEN 'hit'
            ELSE 'pass'
        END AS intensity_code,
        CASE
            WHEN strictly_below(energy_tce, $review_min_tce, $eps) THEN 'below_review'
            WHEN $upper_boundary = 'included' AND NOT strictly_below(energy_tce, $upper_min_tce, $eps) THEN 'upper'
            WHEN $upper_boundary = 'excluded' AND strictly_above(energy_tce, $upper_min_tce, $eps) THEN 'upper'
            ELSE 'county'
        END AS authority
    FROM judged
)
SELECT
    *,
    CASE WHEN intensity_code = 'value_added_missing' THEN 'insufficient_data' ELSE intensity_code END AS intensity_status,
    CASE
        WHEN intensity_code = 'hit' THEN '不予受理'
        WHEN authority = 'upper' THEN '报上级审查'
        WHEN authority = 'county' THEN '受理并开展节能审查'
        ELSE '登记备案'
    END AS suggestion
FROM coded
