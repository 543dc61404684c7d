"""No Django models: the analytics tables live in ClickHouse (see migrations_clickhouse/).

The module exists because Django sends post_migrate only to apps with a models module, and that
signal is how `manage.py migrate` applies the ClickHouse migrations too."""
