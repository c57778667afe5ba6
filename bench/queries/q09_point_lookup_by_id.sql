-- Q9: one order by its id (a point lookup over every partition)
SELECT event_id, customer_id, country, total_amount, status
FROM events
WHERE event_id = '9c57e925-66bf-4e25-523f-d2494e067e65'
