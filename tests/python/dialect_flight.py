"""The SQL dialect over Flight SQL with the real ADBC driver (PyPI).

Usage: dialect_flight.py grpc://HOST:PORT TOKEN
Prints one JSON object: `0.1 + 0.2 = 0.3` read as Trino (the default), and read as DataFusion
when the call asks for it in its x-tributary-dialect header; and the error of an unknown
dialect.
"""
import json
import sys

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager

SQL = "SELECT 0.1 + 0.2 = 0.3 AS exact"
uri, token = sys.argv[1], sys.argv[2]
auth = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
header = adbc_driver_flightsql.DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "x-tributary-dialect"


def answer(dialect):
    kwargs = dict(auth)
    if dialect:
        kwargs[header] = dialect
    with flight_sql.connect(uri, db_kwargs=kwargs) as conn:
        with conn.cursor() as cur:
            try:
                cur.execute(SQL)
                return cur.fetch_arrow_table().column("exact").to_pylist()[0]
            except adbc_driver_manager.Error as e:
                return "error: " + " ".join(str(e).split())


print(json.dumps({"trino": answer(None), "datafusion": answer("datafusion"), "bad": answer("mysql")}))
