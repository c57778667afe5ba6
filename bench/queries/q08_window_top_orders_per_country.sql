-- Q8: the three largest orders per country: a window function over every row
SELECT country, event_id, total_amount, rn
FROM (
  SELECT country, event_id, total_amount,
         ROW_NUMBER() OVER (PARTITION BY country ORDER BY total_amount DESC, event_id) AS rn
  FROM events
) ranked
WHERE rn <= 3
ORDER BY country, rn
