"""The analytics store: where raw events and visits live when ANALYTICS_URL points at ClickHouse.

It imports no other app of the project (the collector writes through it, the dashboard reads
through it), so it can sit under both without a cycle."""
