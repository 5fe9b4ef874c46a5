#!/usr/bin/env bash
# The shop's traffic: an order with its line items every half second, until
# stopped. Usage: writer.sh HOST
set -u
host=$1
export PGPASSWORD=demo-only-password
while true; do
  psql -q -h "$host" -U shop -d shop -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<'SQL' || sleep 2
WITH o AS (
  INSERT INTO orders (customer_id) VALUES (1 + floor(random() * 500)::int) RETURNING id
)
INSERT INTO order_items (order_id, product_id, quantity)
  SELECT o.id, p, 1 + floor(random() * 3)::int FROM o, (SELECT DISTINCT 1 + floor(random() * 200)::int AS p FROM generate_series(1, 3)) ps;
SQL
  sleep 0.5
done
