SELECT dt,
       country,
       count(*)                     AS orders,
       round(sum(total_amount), 2)  AS revenue,
       count(DISTINCT customer_id)  AS customers
FROM orders
WHERE status IN ('paid', 'shipped', 'delivered')
GROUP BY dt, country
