-- Q10: one customer's orders with a running total (a filter, then a window)
SELECT event_id, total_amount,
       ROUND(SUM(total_amount) OVER (ORDER BY event_time, event_id), 2) AS running_total
FROM events
WHERE customer_id = 4242
ORDER BY event_time, event_id
