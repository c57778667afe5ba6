"""Fetches string-heavy results over Flight SQL with the real ADBC driver (PyPI).

Usage: adbc_wide_strings.py grpc://HOST:PORT TOKEN
Each query's rows, their string bytes and any error, as one JSON object. A result whose
messages exceed gRPC's 16 MB default ("received message larger than max") is an error here.
"""
import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

uri, token = sys.argv[1], sys.argv[2]
queries = {
    "top_k": "SELECT id, body FROM docs ORDER BY id LIMIT 500",
    "limit": "SELECT id, body FROM docs LIMIT 500",
    "filter": "SELECT id, body FROM docs WHERE n % 97 = 0",
    "top_k_desc": "SELECT id, body FROM docs ORDER BY body DESC LIMIT 300",
    "all": "SELECT id, body FROM docs",
}
out = {}
auth = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=auth) as conn:
    with conn.cursor() as cur:
        for name, sql in queries.items():
            try:
                cur.execute(sql)
                t = cur.fetch_arrow_table()
                ids = t.column("id").to_pylist()
                out[name] = {
                    "rows": t.num_rows,
                    "distinct": len(set(ids)),
                    "body_bytes": sum(len(b) for b in t.column("body").to_pylist()),
                    "first": min(ids) if ids else None,
                }
            except adbc_driver_manager.Error as e:
                out[name] = {"error": " ".join(str(e).split())}
print(json.dumps(out))
