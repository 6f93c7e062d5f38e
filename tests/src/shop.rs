//! A small schema whose tables are more than rows, for the tests that restore some tables and must get them back
//! whole: `shop_customers` (serial key, unique e-mail), `shop_orders` (identity key, a check constraint, a
//! default, a unique index, a foreign key to customers) and `shop_lines` (serial key, a foreign key to orders).
//! Restoring orders and lines without customers exercises every rule: the foreign key between two restored
//! tables comes back, the one to the table left behind is left out and named.

use crate::postgres::Postgres;

/// The schema and its first rows.
pub const SCHEMA: &str = "
create table shop_customers (id serial primary key, email text not null unique);
create table shop_orders (
    id bigint generated always as identity primary key,
    customer_id int not null references shop_customers (id),
    total numeric not null check (total >= 0),
    status text not null default 'new'
);
create unique index shop_orders_customer_total on shop_orders (customer_id, total);
create table shop_lines (id serial primary key, order_id bigint not null references shop_orders (id), sku text not null);
insert into shop_customers (email) values ('a@example.com'), ('b@example.com');
insert into shop_orders (customer_id, total) values (1, 10), (2, 20), (1, 30);
insert into shop_lines (order_id, sku) values (1, 'tea'), (2, 'cake'), (3, 'jam');
";

/// Creates the schema in `db`.
pub fn plant(pg: &Postgres, db: &str) {
    pg.psql(db, SCHEMA).unwrap();
}

/// The constraints and indexes of the orders and lines tables in `db`, one `table:name:kind` per line, sorted.
pub fn shape(pg: &Postgres, db: &str) -> String {
    pg.psql(
        db,
        "select string_agg(x, ' ' order by x) from (
            select conrelid::regclass::text || ':' || conname || ':' || contype::text as x from pg_constraint
             where conrelid in ('shop_orders'::regclass, 'shop_lines'::regclass) and contype <> 'n'
            union all
            select tablename || ':' || indexname || ':index' from pg_indexes
             where tablename in ('shop_orders', 'shop_lines')) s",
    )
    .unwrap()
}

/// Proves the restored orders and lines behave as tables, not only rows: new rows draw the next keys from
/// their sequences and take their defaults, and the check, unique and foreign-key constraints refuse bad rows.
pub fn assert_whole(pg: &Postgres, db: &str) {
    let next = pg
        .psql(
            db,
            "insert into shop_orders (customer_id, total) values (2, 40) returning id || ':' || status",
        )
        .unwrap();
    assert_eq!(
        next, "4:new",
        "the identity continues after the restored rows and the default holds"
    );
    let line = pg
        .psql(
            db,
            "insert into shop_lines (order_id, sku) values (4, 'bread') returning id",
        )
        .unwrap();
    assert_eq!(line, "4", "the serial's sequence continues after the restored rows");
    for (bad, why) in [
        (
            "insert into shop_orders (customer_id, total) values (1, -1)",
            "the check constraint",
        ),
        (
            "insert into shop_orders (customer_id, total) values (1, 10)",
            "the unique index",
        ),
        (
            "insert into shop_lines (order_id, sku) values (999, 'x')",
            "the foreign key between restored tables",
        ),
        (
            "insert into shop_lines (id, order_id, sku) values (1, 1, 'x')",
            "the primary key",
        ),
    ] {
        assert!(pg.psql(db, bad).is_err(), "{why} holds in {db}");
    }
}
