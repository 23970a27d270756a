#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
#
# dashboard_series.py DASHBOARD.json METRICS.txt - every query of a Grafana
# dashboard names series that the metrics text exports, with labels they
# have.
#
# The queries are the "expr" of every panel target and the "query" of every
# templating variable but the data source one.  A name is a gopro_* or process_* identifier; it
# must be a sample name of the text (histograms count with their _bucket,
# _sum and _count).  The label names of a selector ({name="..."}) and of a
# by (...) or without (...) clause must be labels of one of the series the
# query names, or one of those Prometheus adds when it scrapes (job,
# instance).  Exits 1 and lists every problem, 0 when there is none.
import json
import re
import sys

SCRAPE_LABELS = {"job", "instance"}
NAME = re.compile(r"\b((?:gopro|process)_[a-zA-Z0-9_]*)\b")
SELECTOR = re.compile(r"\b((?:gopro|process)_[a-zA-Z0-9_]*)\s*\{([^}]*)\}")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")


def exported(path):
    """Sample name -> the set of its label names."""
    series = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
            if m is None:
                continue
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="',
                                    m.group(3) or ""))
            series.setdefault(m.group(1), set()).update(labels)
    return series


def queries(dashboard):
    out = []

    def walk(node, where):
        # A data source variable's query is a plugin type, not PromQL.
        if isinstance(node, dict) and node.get("type") == "datasource" and \
                "name" in node:
            return
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "query") and isinstance(v, str):
                    out.append((where, v))
                else:
                    walk(v, node.get("title", where))
        elif isinstance(node, list):
            for v in node:
                walk(v, where)
    walk(dashboard, "dashboard")
    return out


def check(where, expr, series):
    problems = []
    names = set(NAME.findall(expr))
    labels = set()
    for name in names:
        if name not in series:
            problems.append(f"{where}: {expr!r} names {name}, which the "
                            "endpoint does not export")
        else:
            labels |= series[name]
    allowed = labels | SCRAPE_LABELS
    used = set()
    for name, body in SELECTOR.findall(expr):
        used |= set(MATCHER.findall(body))
    for body in GROUPING.findall(expr):
        used |= {x.strip() for x in body.split(",") if x.strip()}
    for label in sorted(used - allowed):
        problems.append(f"{where}: {expr!r} uses the label {label}, which "
                        f"no series of {sorted(names)} has")
    if not names:
        problems.append(f"{where}: {expr!r} names no gopro series")
    return problems


def main():
    with open(sys.argv[1]) as f:
        dashboard = json.load(f)
    series = exported(sys.argv[2])
    qs = queries(dashboard)
    problems = []
    for where, expr in qs:
        problems += check(where, expr, series)
    for p in problems:
        print(p)
    print(f"{len(qs)} queries, {len(problems)} problems")
    return 1 if problems or len(qs) < 10 else 0


if __name__ == "__main__":
    sys.exit(main())
