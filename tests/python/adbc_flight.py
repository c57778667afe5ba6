"""Drives Tributary's Flight SQL endpoint with the real ADBC Flight SQL driver (PyPI).

Usage: adbc_flight.py grpc://HOST:PORT TOKEN
Prints one JSON object with what it saw; the Rust test checks it.
"""
import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

uri, token = sys.argv[1], sys.argv[2]
out = {}

# Without the token: refused.
try:
    with flight_sql.connect(uri) as conn:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
    out["unauthenticated"] = "accepted"
except adbc_driver_manager.Error as e:
    out["unauthenticated"] = type(e).__name__ + ": " + str(e).splitlines()[0]

auth = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=auth) as conn:
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) AS n FROM events")
        out["count"] = cur.fetchone()[0]
        cur.execute("SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt")
        table = cur.fetch_arrow_table()
        out["columns"] = table.column_names
        out["days"] = [[str(d), n] for d, n in zip(table.column("dt").to_pylist(), table.column("n").to_pylist())]
        cur.execute(
            "SELECT count(*) FROM events e CROSS JOIN UNNEST(e.items) AS t(item)"
        )
        out["items"] = cur.fetchone()[0]
        # Parameters: ADBC prepares the statement, binds the row (DoPut), executes.
        cur.execute("SELECT customer_id, country FROM events ORDER BY event_id LIMIT 1")
        customer, country = cur.fetchone()
        out["customer"], out["country"] = customer, country
        cur.execute("SELECT count(*) FROM events WHERE customer_id = ?", parameters=(customer,))
        out["by_customer"] = cur.fetchone()[0]
        sql = "SELECT count(*) FROM events WHERE country = ? AND total_amount > ? AND status <> 'what?'"
        out["by_country"] = []
        for threshold in (10.0, 100.0):
            cur.execute(sql, parameters=(country, threshold))
            out["by_country"].append(cur.fetchone()[0])
        schema = cur.adbc_prepare("SELECT event_id FROM events WHERE customer_id = ? AND country = ?")
        out["param_types"] = [str(f.type) for f in schema] if schema is not None else None
        try:
            cur.execute("DROP TABLE events")
            cur.fetchall()
            out["drop"] = "accepted"
        except adbc_driver_manager.Error as e:
            out["drop"] = " ".join(str(e).split())
    objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    out["catalogs"] = [c["catalog_name"] for c in objects]
    out["tables"] = sorted(
        t["table_name"]
        for c in objects
        for s in (c["catalog_db_schemas"] or [])
        for t in (s["db_schema_tables"] or [])
    )
    info = conn.adbc_get_info()
    out["vendor"] = info.get("vendor_name")

print(json.dumps(out))
