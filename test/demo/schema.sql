-- A small shop: customers, products, orders with line items.
CREATE TABLE customers (
  id serial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
  id serial PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  name text NOT NULL,
  price_cents int NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers,
  status text NOT NULL DEFAULT 'paid',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE INDEX orders_created_at ON orders (created_at);
CREATE TABLE order_items (
  order_id bigint NOT NULL REFERENCES orders ON DELETE CASCADE,
  product_id int NOT NULL REFERENCES products,
  quantity int NOT NULL CHECK (quantity > 0),
  PRIMARY KEY (order_id, product_id)
);

INSERT INTO customers (email, created_at)
  SELECT 'customer' || g || '@example.com', now() - (g || ' hours')::interval FROM generate_series(1, 500) g;
INSERT INTO products (sku, name, price_cents)
  SELECT 'SKU-' || g, 'Product ' || g, 100 + g * 7 FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, created_at)
  SELECT 1 + (g % 500), now() - ((5000 - g) || ' seconds')::interval FROM generate_series(1, 5000) g;
INSERT INTO order_items (order_id, product_id, quantity)
  SELECT o.id, 1 + ((o.id * 7 + k) % 200), 1 + (k % 3) FROM orders o, generate_series(1, 3) k;
