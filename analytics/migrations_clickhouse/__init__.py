"""Versioned ClickHouse migrations: modules `NNNN_name.py`, each with a list OPERATIONS of
analytics.schema operations, applied in order by analytics.migrations (`manage.py migrate`,
`manage.py clickhouse_migrations --apply`). Never edit an applied one: add the next."""
