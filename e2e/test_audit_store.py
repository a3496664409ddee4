"""The store keeps audit events: its migrations create audit_log (columns,
primary key, indexes) and it exposes the audit metrics. Events sent through
the audit sink and read back through GET /api/audit/logs and
/api/audit/stats are covered by the api-gateway's audit tests."""

from e2elib import metric_type, pg_rows

COLUMNS = {
    "id": "uuid",
    "ts": "timestamp with time zone",
    "category": "text",
    "action": "text",
    "actor_type": "text",
    "actor_id": "text",
    "actor_name": "text",
    "target": "text",
    "success": "boolean",
    "details": "jsonb",
    "service": "text",
    "received_at": "timestamp with time zone",
    "seq": "bigint",
}


def test_audit_log_table(stack):
    stack.wait_ready("store")
    rows = pg_rows(stack.pg_dsn,
                   "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                   " WHERE table_name = 'audit_log'")
    got = {r["column_name"]: r["data_type"] for r in rows}
    assert got == COLUMNS, got
    not_null = {r["column_name"] for r in rows if r["is_nullable"] == "NO"}
    assert {"id", "ts", "category", "action", "received_at", "seq"} <= not_null, not_null

    idx = pg_rows(stack.pg_dsn,
                  "SELECT indexdef FROM pg_indexes WHERE tablename = 'audit_log'")
    defs = [r["indexdef"] for r in idx]
    assert any("UNIQUE" in d and "(id)" in d for d in defs), defs
    assert any(d.endswith("(ts)") for d in defs), defs
    assert any(d.endswith("(category, ts)") for d in defs), defs

    version = pg_rows(stack.pg_dsn, "SELECT max(version) AS v FROM schema_migrations")[0]["v"]
    assert version >= 2, version
    name = pg_rows(stack.pg_dsn, "SELECT name FROM schema_migrations WHERE version = 2")
    assert name and name[0]["name"] == "audit log", name


def test_audit_metrics(stack):
    text = stack.metrics("store")
    for name in ("store_audit_events_received_total", "store_audit_events_written_total",
                 "store_audit_rejected_total", "store_audit_events_dropped_total"):
        assert metric_type(text, name) == "counter", name
