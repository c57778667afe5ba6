#!/usr/bin/env python3
"""Carries the expected values of Trino's own function tests over as data.

Reads Trino's JUnit test sources (a checkout of trinodb/trino) and writes one JSON-lines
cases file per test class into tests/sql/trino/: the SQL expression (or query), its bound
variables, and what Trino answers — a value and type, NULL, another SQL expression it
equals, or an error. Only literal expectations are carried; an assertion whose expected
value is computed in Java is counted as skipped. Run it again to refresh the cases:

    python3 scripts/trino_cases.py /path/to/trino [--out tests/sql/trino]

Statuses already recorded in the output files (see tests/tests/integration/trino.rs) are
kept for cases whose text has not changed.
"""
import argparse
import json
import os
import re
import sys

SOURCES = {
    # test class -> path under core/trino-main/src/test/java/io/trino/
    "TestStringFunctions": "operator/scalar/TestStringFunctions.java",
    "TestDateTimeFunctions": "operator/scalar/TestDateTimeFunctions.java",
    "TestMathFunctions": "operator/scalar/TestMathFunctions.java",
    "TestRegexpFunctions": "operator/scalar/AbstractTestRegexpFunctions.java",
    "TestJsonFunctions": "operator/scalar/TestJsonFunctions.java",
    "TestUrlFunctions": "operator/scalar/TestUrlFunctions.java",
    "TestConditions": "operator/scalar/TestConditions.java",
    "TestFormatFunction": "operator/scalar/TestFormatFunction.java",
    "TestArrayFunctions": "operator/scalar/TestArrayFunctions.java",
    "TestArrayOperators": "type/TestArrayOperators.java",
    "TestLambdaExpression": "operator/scalar/TestLambdaExpression.java",
    "TestArrayTransformFunction": "operator/scalar/TestArrayTransformFunction.java",
    "TestArrayFilterFunction": "operator/scalar/TestArrayFilterFunction.java",
    "TestArrayReduceFunction": "operator/scalar/TestArrayReduceFunction.java",
    "TestArrayMatchFunctions": "operator/scalar/TestArrayMatchFunctions.java",
    "TestZipWithFunction": "operator/scalar/TestZipWithFunction.java",
    "TestUnnest": "sql/query/TestUnnest.java",
    "TestListagg": "sql/query/TestListagg.java",
    "TestAggregation": "sql/query/TestAggregation.java",
}

# ---------------------------------------------------------------- Java tokens


def unescape(body):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n == "u":
            j = i + 1
            while body[j] == "u":
                j += 1
            out.append(chr(int(body[j:j + 4], 16)))
            i = j + 4
            continue
        if n in "01234567":
            j = i + 1
            while j < len(body) and j < i + 4 and body[j] in "01234567":
                j += 1
            out.append(chr(int(body[i + 1:j], 8)))
            i = j
            continue
        out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "s": " ",
                    "'": "'", '"': '"', "\\": "\\"}[n])
        i += 2
    # Java strings are UTF-16: join surrogate pairs written as two \u escapes.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def tokens(src):
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif src.startswith("//", i):
            i = src.find("\n", i) if src.find("\n", i) >= 0 else n
        elif src.startswith("/*", i):
            i = src.find("*/", i) + 2
        elif src.startswith('"""', i):
            j = src.find('"""', i + 3)
            text = src[i + 3:j]
            lines = text.split("\n")[1:]
            indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
            if lines and not lines[-1].strip():
                indent = min(indent, len(lines[-1]))
            body = "\n".join(l[indent:] for l in lines)
            yield ("str", unescape(body))
            i = j + 3
        elif c == '"':
            j = i + 1
            while src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            yield ("str", unescape(src[i + 1:j]))
            i = j + 1
        elif c == "'":
            j = i + 1
            while src[j] != "'":
                j += 2 if src[j] == "\\" else 1
            yield ("char", unescape(src[i + 1:j]))
            i = j + 1
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            m = re.match(r"0[xX][0-9a-fA-F_]+[lL]?|[0-9][0-9_]*\.?[0-9_]*([eE][+-]?[0-9]+)?[lLfFdD]?|\.[0-9]+([eE][+-]?[0-9]+)?[fFdD]?", src[i:])
            yield ("num", m.group(0))
            i += len(m.group(0))
        elif c.isalpha() or c in "_$":
            m = re.match(r"[A-Za-z_$][A-Za-z_$0-9]*", src[i:])
            yield ("id", m.group(0))
            i += len(m.group(0))
        elif src.startswith("::", i) or src.startswith("->", i):
            yield ("op", src[i:i + 2])
            i += 2
        else:
            yield ("op", c)
            i += 1


def statements(src):
    """Top-level statements: token lists split at ; { } outside parentheses."""
    cur, depth = [], 0
    for t in tokens(src):
        if t[0] == "op" and t[1] in "([":
            depth += 1
        elif t[0] == "op" and t[1] in ")]":
            depth -= 1
        if depth == 0 and t[0] == "op" and t[1] in ";{}":
            if cur:
                yield cur
            cur = []
            if t[1] == "}":
                yield [("end", "}")]
            continue
        cur.append(t)
    if cur:
        yield cur

# ---------------------------------------------------------------- Java expressions


class P:
    def __init__(self, toks):
        self.t, self.i = toks, 0

    def peek(self, k=0):
        return self.t[self.i + k] if self.i + k < len(self.t) else ("eof", "")

    def take(self, kind=None, val=None):
        t = self.peek()
        if (kind and t[0] != kind) or (val is not None and t[1] != val):
            raise SyntaxError(f"expected {kind} {val}, got {t}")
        self.i += 1
        return t

    def at(self, kind, val=None):
        t = self.peek()
        return t[0] == kind and (val is None or t[1] == val)

    def expr(self):
        # ternaries and lambdas are not expected in expectations: give up on them
        left = self.unary()
        while self.at("op", "+") or self.at("op", "-") or self.at("op", "*") or self.at("op", "/"):
            op = self.take()[1]
            left = ("bin", op, left, self.unary())
        if self.at("op", "?") or self.at("op", "->") or self.at("op", "="):
            raise SyntaxError("unsupported java")
        return left

    def unary(self):
        if self.at("op", "-"):
            self.take()
            return ("neg", self.unary())
        if self.at("op", "(") and self.peek(1)[0] == "id" and self.peek(1)[1] in ("byte", "short", "int", "long", "float", "double") and self.peek(2) == ("op", ")"):
            self.take(); cast = self.take()[1]; self.take()
            return ("cast", cast, self.unary())
        return self.postfix(self.primary())

    def args(self):
        self.take("op", "(")
        out = []
        while not self.at("op", ")"):
            out.append(self.expr())
            if self.at("op", ","):
                self.take()
        self.take("op", ")")
        return out

    def primary(self):
        t = self.take()
        if t[0] in ("str", "char"):
            return ("lit", t[1])
        if t[0] == "num":
            return ("num", t[1])
        if t[0] == "id" and t[1] == "new":
            name = self.take("id")[1]
            while self.at("op", "."):
                self.take(); name = self.take("id")[1]
            if self.at("op", "<"):
                while not self.at("op", ">"):
                    self.take()
                self.take()
            if self.at("op", "["):
                raise SyntaxError("array")
            return ("new", name, self.args())
        if t[0] == "id":
            return ("name", t[1])
        if t == ("op", "("):
            e = self.expr()
            self.take("op", ")")
            return e
        raise SyntaxError(f"unexpected {t}")

    def postfix(self, e):
        while True:
            if self.at("op", "."):
                self.take()
                name = self.take("id")[1]
                if self.at("op", "("):
                    e = ("call", e, name, self.args())
                else:
                    e = ("field", e, name)
            elif self.at("op", "("):
                e = ("call", None, e[1] if e[0] == "name" else "?", self.args())
            elif self.at("op", "::"):
                self.take()
                e = ("ref", e, self.take("id")[1])
            else:
                return e


class Skip(Exception):
    pass


def jstr(e):
    """A Java string expression's value."""
    if e[0] == "lit":
        return e[1]
    if e[0] == "bin" and e[1] == "+":
        return jstr(e[2]) + jstr(e[3])
    if e[0] == "num":
        return e[1].rstrip("lL")
    raise Skip("computed string")


SIMPLE_TYPES = {
    "BIGINT": "bigint", "INTEGER": "integer", "SMALLINT": "smallint", "TINYINT": "tinyint",
    "DOUBLE": "double", "REAL": "real", "BOOLEAN": "boolean", "VARCHAR": "varchar",
    "DATE": "date", "VARBINARY": "varbinary", "JSON": "json", "UNKNOWN": "unknown",
    "TIMESTAMP_MILLIS": "timestamp(3)", "TIMESTAMP_SECONDS": "timestamp(0)",
    "TIMESTAMP_MICROS": "timestamp(6)", "TIMESTAMP_NANOS": "timestamp(9)",
    "TIMESTAMP_TZ_MILLIS": "timestamp(3) with time zone", "TIME_MILLIS": "time(3)",
    "INTERVAL_DAY_TIME": "interval day to second", "INTERVAL_YEAR_MONTH": "interval year to month",
    "IPADDRESS": "ipaddress", "UUID": "uuid", "JSON_2016": "json",
}


def jtype(e):
    if e[0] == "name" and e[1] in SIMPLE_TYPES:
        return SIMPLE_TYPES[e[1]]
    if e[0] == "field" and e[2] in SIMPLE_TYPES:
        return SIMPLE_TYPES[e[2]]
    if e[0] == "call":
        name, a = e[2], e[3]
        if name == "createVarcharType":
            return f"varchar({jstr(a[0])})"
        if name == "createUnboundedVarcharType":
            return "varchar"
        if name == "createCharType":
            return f"char({jstr(a[0])})"
        if name == "createDecimalType":
            return f"decimal({jstr(a[0])},{jstr(a[1])})" if len(a) == 2 else f"decimal({jstr(a[0])},0)"
        if name in ("createTimestampType", "createTimestampWithTimeZoneType", "createTimeType"):
            base = {"createTimestampType": "timestamp", "createTimeType": "time",
                    "createTimestampWithTimeZoneType": "timestamp"}[name]
            tz = " with time zone" if "Zone" in name else ""
            return f"{base}({jstr(a[0])}){tz}"
        if name == "mapType":
            return f"map({jtype(a[0])}, {jtype(a[1])})"
        if name == "anonymous" and a and a[0][0] == "call":
            return "row(" + ", ".join(jtype(x) for x in a[0][3]) + ")"
    if e[0] == "new" and e[1] == "ArrayType":
        return f"array({jtype(e[2][0])})"
    raise Skip("type")


def num(text):
    t = text.replace("_", "")
    if t[:2].lower() == "0x":
        return int(t.rstrip("lL"), 16), ("bigint" if t[-1] in "lL" else "integer")
    if t[-1] in "lL":
        return int(t[:-1]), "bigint"
    if t[-1] in "fF":
        return float(t[:-1]), "real"
    if t[-1] in "dD" or any(c in t for c in ".eE"):
        return float(t.rstrip("dD")), "double"
    return int(t), "integer"


SPECIAL = {
    ("Double", "NaN"): ("NaN", "double"), ("Double", "POSITIVE_INFINITY"): ("Infinity", "double"),
    ("Double", "NEGATIVE_INFINITY"): ("-Infinity", "double"), ("Float", "NaN"): ("NaN", "real"),
    ("Float", "POSITIVE_INFINITY"): ("Infinity", "real"), ("Float", "NEGATIVE_INFINITY"): ("-Infinity", "real"),
    ("Long", "MAX_VALUE"): (2**63 - 1, "bigint"), ("Long", "MIN_VALUE"): (-2**63, "bigint"),
    ("Integer", "MAX_VALUE"): (2**31 - 1, "integer"), ("Integer", "MIN_VALUE"): (-2**31, "integer"),
    ("Short", "MAX_VALUE"): (2**15 - 1, "smallint"), ("Short", "MIN_VALUE"): (-2**15, "smallint"),
    ("Byte", "MAX_VALUE"): (127, "tinyint"), ("Byte", "MIN_VALUE"): (-128, "tinyint"),
    ("Math", "PI"): (3.141592653589793, "double"), ("Math", "E"): (2.718281828459045, "double"),
}


def jvalue(e):
    """(JSON value, implied Trino type or None)."""
    k = e[0]
    if k == "lit":
        return e[1], "varchar"
    if k == "num":
        return num(e[1])
    if k == "neg":
        v, t = jvalue(e[1])
        if isinstance(v, str):
            return ("-" + v if not v.startswith("-") else v[1:]), t
        return -v, t
    if k == "name":
        if e[1] in ("true", "false"):
            return e[1] == "true", "boolean"
        if e[1] == "null":
            return None, None
        raise Skip("java name " + e[1])
    if k == "field" and e[1][0] == "name" and (e[1][1], e[2]) in SPECIAL:
        return SPECIAL[(e[1][1], e[2])]
    if k == "cast":
        v, _ = jvalue(e[2])
        return (int(v) if e[1] in ("byte", "short", "int", "long") else float(v)), {
            "byte": "tinyint", "short": "smallint", "int": "integer", "long": "bigint",
            "float": "real", "double": "double"}[e[1]]
    if k == "call":
        name, a = e[2], e[3]
        if name in ("of", "asList", "copyOf") and e[1] and e[1][0] == "name" and e[1][1] in ("ImmutableList", "List", "Arrays", "Lists"):
            vals = [jvalue(x) for x in a]
            return [v for v, _ in vals], None
        if name == "asList" and e[1] is None:
            return [jvalue(x)[0] for x in a], None
        if name == "of" and e[1] and e[1][0] == "name" and e[1][1] in ("ImmutableMap", "Map"):
            vals = [jvalue(x)[0] for x in a]
            return {"map": [[vals[i], vals[i + 1]] for i in range(0, len(vals), 2)]}, None
        if name == "decimal" and e[1] is None:
            return {"decimal": jstr(a[0])}, jtype(a[1]) if len(a) > 1 else None
        if name == "valueOf" and e[1] and e[1][0] == "name":
            v, _ = jvalue(a[0])
            t = {"Long": "bigint", "Integer": "integer", "Double": "double", "Float": "real", "Short": "smallint", "Byte": "tinyint", "Boolean": "boolean"}.get(e[1][1])
            if t is None:
                raise Skip("valueOf")
            return v, t
        if name == "padRight" and e[1] is None:
            s, n = jstr(a[0]), int(jstr(a[1]))
            return s + " " * (n - len(s)), None
        if name == "repeat" and e[1] is not None:
            return jstr(e[1]) * int(jstr(a[0])), "varchar"
    raise Skip("computed value")


def provider(e):
    """(sql, bindings, kind) of an assertions.function/expression/query(...) chain."""
    bindings = []
    while e[0] == "call" and e[2] == "binding":
        bindings.insert(0, [jstr(e[3][0]), jstr(e[3][1])])
        e = e[1]
    if e[0] == "call" and e[1] is None and e[2] == "format":
        # TestFormatFunction's format(pattern, args...) helper
        args = [sql_quote(jstr(e[3][0]))] + [jstr(x) for x in e[3][1:]]
        return f"format({', '.join(args)})", bindings, "expression"
    if e[0] != "call" or e[1] != ("name", "assertions"):
        raise Skip("provider")
    name, a = e[2], e[3]
    if name == "function":
        return f"{jstr(a[0])}({', '.join(jstr(x) for x in a[1:])})", bindings, "expression"
    if name == "expression":
        return jstr(a[0]), bindings, "expression"
    if name == "query" and len(a) == 1:
        return jstr(a[0]), bindings, "query"
    raise Skip("provider " + name)


def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


URL_PARTS = ["protocol", "host", "port", "path", "query", "fragment"]


def helper_cases(e):
    """Cases of TestUrlFunctions' validateUrlExtract(url, protocol, host, port, ...)."""
    a = e[3]
    url = jstr(a[0])
    out = []
    for part, arg in zip(URL_PARTS, a[1:]):
        v, _ = jvalue(arg)
        out.append({"sql": f"url_extract_{part}({sql_quote(url)})", "kind": "expression",
                    "expect": {"value": v}, "type": "bigint" if part == "port" else "varchar"})
    return out


def case_of(stmt):
    p = P(stmt)
    e = p.expr()
    if not p.at("eof"):
        raise Skip("trailing")
    if e[0] == "call" and e[1] is None and e[2] == "validateUrlExtract":
        return helper_cases(e)
    chain = []
    while e[0] == "call" and e[1] is not None:
        chain.insert(0, (e[2], e[3]))
        e = e[1]
    if e[0] != "call" or e[2] not in ("assertThat", "assertTrinoExceptionThrownBy"):
        raise Skip("not an assertion")
    inner = e[3][0]
    if e[2] == "assertTrinoExceptionThrownBy":
        if inner[0] != "ref":
            raise Skip("exception target")
        sql, bindings, kind = provider(inner[1])
        msg = None
        for name, a in chain:
            if name in ("hasMessage", "hasMessageMatching", "hasMessageContaining"):
                try:
                    msg = jstr(a[0])
                except Skip:
                    pass
        return {"sql": sql, "bindings": bindings, "kind": kind, "expect": {"error": msg or ""}}
    sql, bindings, kind = provider(inner)
    case = {"sql": sql, "bindings": bindings, "kind": kind}
    ty = None
    for name, a in chain:
        if name == "hasType":
            ty = jtype(a[0])
        elif name == "isEqualTo":
            v, implied = jvalue(a[0])
            case["expect"] = {"value": v}
            ty = ty or implied
        elif name == "isNull":
            case["expect"] = {"value": None}
            ty = ty or (jtype(a[0]) if a else None)
        elif name == "matches":
            case["expect"] = {"sql": jstr(a[0])}
        elif name in ("failure", "nonTrinoExceptionFailure"):
            case["expect"] = {"error": ""}
        elif name in ("hasMessage", "hasMessageMatching", "hasMessageContaining") and "error" in case.get("expect", {}):
            case["expect"]["error"] = jstr(a[0])
        elif name in ("hasErrorCode", "isInstanceOf", "hasOutputs", "ordered", "skippingTypesCheck", "returnsEmptyResult"):
            if name == "ordered":
                case["ordered"] = True
            if name == "returnsEmptyResult":
                case["expect"] = {"rows": []}
        else:
            raise Skip("assertion " + name)
    if "expect" not in case:
        raise Skip("no expectation")
    if ty:
        case["type"] = ty
    return case


# The test session's clock (a fixed instant) cannot be carried over as data.
CLOCK = re.compile(r"\b(current_date|current_time|current_timestamp|localtime|localtimestamp|now\(\))", re.I)


# Test methods that run in a session of their own (another locale): not carried as data.
SESSION_METHODS = {"testLocale"}


def extract(path):
    src = open(path, encoding="utf-8").read()
    cases, skipped, method = [], {}, "?"
    stmts = list(statements(src))
    for idx, st in enumerate(stmts):
        if st and st[0] == ("end", "}"):
            continue
        heads = [i for i, t in enumerate(st[:-2]) if t == ("id", "void") and st[i + 2] == ("op", "(")]
        if heads and ("op", "=") not in st:
            method = st[heads[0] + 1][1]
            continue
        head = st[0]
        if head[0] != "id" or head[1] not in ("assertThat", "assertTrinoExceptionThrownBy", "validateUrlExtract"):
            continue
        try:
            c = case_of(st)
        except (Skip, SyntaxError, IndexError, KeyError, ValueError) as err:
            reason = str(err).split(" ")[0] if isinstance(err, Skip) else "java"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        for one in c if isinstance(c, list) else [c]:
            if method in SESSION_METHODS:
                skipped["session"] = skipped.get("session", 0) + 1
                continue
            if CLOCK.search(one["sql"]):
                skipped["clock"] = skipped.get("clock", 0) + 1
                continue
            one["test"] = method
            one.setdefault("bindings", [])
            cases.append(one)
    return cases, skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trino")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "sql", "trino"))
    args = ap.parse_args()
    base = os.path.join(args.trino, "core/trino-main/src/test/java/io/trino")
    total = 0
    for cls, rel in SOURCES.items():
        cases, skipped = extract(os.path.join(base, rel))
        out = os.path.join(args.out, cls + ".jsonl")
        old = {}
        if os.path.exists(out):
            for line in open(out, encoding="utf-8"):
                c = json.loads(line)
                old[(c["sql"], json.dumps(c.get("bindings")), json.dumps(c["expect"]))] = c
        seen = {}
        with open(out, "w", encoding="utf-8") as f:
            for c in cases:
                key = (c["sql"], json.dumps(c.get("bindings")), json.dumps(c["expect"]))
                if key in seen:
                    continue
                seen[key] = True
                prev = old.get(key)
                if prev and "status" in prev:
                    c["status"] = prev["status"]
                    if "reason" in prev:
                        c["reason"] = prev["reason"]
                if not c["bindings"]:
                    del c["bindings"]
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        total += len(seen)
        print(f"{cls}: {len(seen)} cases, skipped {sum(skipped.values())} {skipped}", file=sys.stderr)
    print(f"total {total}", file=sys.stderr)


if __name__ == "__main__":
    main()
