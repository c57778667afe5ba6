"""Hostile calls over Flight SQL with the real ADBC driver (PyPI).

Usage: hostile_flight.py grpc://HOST:PORT TOKEN
Prints one JSON object: the error of a 2,000-term prepared statement (CreatePreparedStatement
used to overflow the server's stack), the error of a query when the server is busy (None when
it ran), and a 300-term query's answer when it ran.
"""
import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager


def terms(n):
    return "SELECT " + "+".join(["1"] * n) + " AS n"


def error(e):
    return " ".join(str(e).split())


uri, token = sys.argv[1], sys.argv[2]
out = {"deep_error": None, "busy_error": None, "answer": None}
auth = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
with flight_sql.connect(uri, db_kwargs=auth) as conn:
    with conn.cursor() as cur:
        try:
            cur.adbc_prepare(terms(2000))
        except adbc_driver_manager.Error as e:
            out["deep_error"] = error(e)
    with conn.cursor() as cur:
        try:
            cur.execute(terms(300))
            out["answer"] = cur.fetch_arrow_table().column("n").to_pylist()[0]
        except adbc_driver_manager.Error as e:
            out["busy_error"] = error(e)
print(json.dumps(out))
