-- 重点用能单位 (seed 一.5): firm-years whose annual energy is at least $threshold_tce,
-- with energy per 万元 of value added and the change from the firm's previous year.
-- `rising`: this year's intensity strictly above last year's (NULL when either is unknown).
-- Only the firms listed in some year are followed through their years (`listed`): a province's
-- million firms are not all windowed to find the few thousand above the threshold.
WITH listed AS (
    SELECT DISTINCT uscc FROM key_energy
    WHERE energy_tce IS NOT NULL AND NOT strictly_below(energy_tce, $threshold_tce, $eps)
),
yearly AS (
    SELECT
        e.uscc, e.year, e.energy_tce, s.value_added,
        e.energy_tce / nullif(s.value_added, 0) AS intensity
    FROM key_energy e
    SEMI JOIN listed USING (uscc)
    LEFT JOIN (SELECT * FROM key_stats SEMI JOIN listed USING (uscc)) s USING (uscc, year)
    WHERE e.energy_tce IS NOT NULL
),
trend AS (
    SELECT
        *,
        lag(intensity) OVER (PARTITION BY uscc ORDER BY year) AS intensity_prev,
        lag(year) OVER (PARTITION BY uscc ORDER BY year) AS year_prev
    FROM yearly
)
SELECT
    uscc, year, energy_tce, value_added, intensity,
    -- the previous row counts only when it is the year just before
    CASE WHEN year_prev = year - 1 THEN intensity_prev END AS intensity_prev,
    CASE WHEN year_prev = year - 1 THEN strictly_above(intensity, intensity_prev, $eps) END AS rising
FROM trend
WHERE NOT strictly_below(energy_tce, $threshold_tce, $eps)
