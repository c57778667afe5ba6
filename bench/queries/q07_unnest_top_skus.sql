-- Q7: best-selling SKUs across all orders: Athena's CROSS JOIN UNNEST over the items array
SELECT item.sku             AS sku,
       SUM(item.qty)        AS units,
       COUNT(*)             AS order_lines
FROM events
CROSS JOIN UNNEST(items) AS t(item)
GROUP BY item.sku
ORDER BY units DESC, sku
LIMIT 10
