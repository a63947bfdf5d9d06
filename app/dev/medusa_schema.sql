-- Medusa 2.21.2's tables that netvalve-gateway reads, with the columns and types its own
-- migrations create (shared/MEDUSA.md section 6). Used by the tests and by `make run`'s demo
-- database only; the service never creates or writes Medusa tables in a real deployment.
-- Idempotent: safe to run against a database that already has them.

DO $$ BEGIN
    CREATE TYPE order_status_enum AS ENUM
        ('pending', 'completed', 'draft', 'archived', 'canceled', 'requires_action');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS cart (
    id text NOT NULL PRIMARY KEY,
    region_id text,
    customer_id text,
    sales_channel_id text,
    email text,
    currency_code text NOT NULL,
    shipping_address_id text,
    billing_address_id text,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    completed_at timestamptz,
    locale text
);

CREATE TABLE IF NOT EXISTS cart_address (
    id text NOT NULL PRIMARY KEY,
    customer_id text,
    company text,
    first_name text,
    last_name text,
    address_1 text,
    address_2 text,
    city text,
    country_code text,
    province text,
    postal_code text,
    phone text,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS cart_line_item (
    id text NOT NULL PRIMARY KEY,
    cart_id text NOT NULL,
    title text NOT NULL,
    subtitle text,
    thumbnail text,
    quantity integer NOT NULL,
    variant_id text,
    product_id text,
    product_title text,
    product_description text,
    product_subtitle text,
    product_type text,
    product_collection text,
    product_handle text,
    variant_sku text,
    variant_barcode text,
    variant_title text,
    variant_option_values jsonb,
    requires_shipping boolean NOT NULL DEFAULT true,
    is_discountable boolean NOT NULL DEFAULT true,
    is_tax_inclusive boolean NOT NULL DEFAULT false,
    compare_at_unit_price numeric,
    raw_compare_at_unit_price jsonb,
    unit_price numeric NOT NULL,
    raw_unit_price jsonb NOT NULL,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    product_type_id text,
    is_custom_price boolean NOT NULL DEFAULT false,
    is_giftcard boolean NOT NULL DEFAULT false
);

CREATE TABLE IF NOT EXISTS cart_payment_collection (
    cart_id varchar(255) NOT NULL,
    payment_collection_id varchar(255) NOT NULL,
    id varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (cart_id, payment_collection_id)
);

CREATE TABLE IF NOT EXISTS payment_collection (
    id text NOT NULL PRIMARY KEY,
    currency_code text NOT NULL,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    authorized_amount numeric,
    raw_authorized_amount jsonb,
    captured_amount numeric,
    raw_captured_amount jsonb,
    refunded_amount numeric,
    raw_refunded_amount jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    completed_at timestamptz,
    status text NOT NULL DEFAULT 'not_paid' CHECK ((status = ANY (ARRAY['not_paid'::text, 'awaiting'::text, 'authorized'::text, 'partially_authorized'::text, 'canceled'::text, 'failed'::text, 'partially_captured'::text, 'completed'::text]))),
    metadata jsonb
);

CREATE TABLE IF NOT EXISTS payment_session (
    id text NOT NULL PRIMARY KEY,
    currency_code text NOT NULL,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    provider_id text NOT NULL,
    data jsonb NOT NULL DEFAULT '{}'::jsonb,
    context jsonb,
    status text NOT NULL DEFAULT 'pending' CHECK ((status = ANY (ARRAY['authorized'::text, 'captured'::text, 'pending'::text, 'requires_more'::text, 'error'::text, 'canceled'::text, 'pending_authorization'::text]))),
    authorized_at timestamptz,
    payment_collection_id text NOT NULL,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS payment (
    id text NOT NULL PRIMARY KEY,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    currency_code text NOT NULL,
    provider_id text NOT NULL,
    data jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    captured_at timestamptz,
    canceled_at timestamptz,
    payment_collection_id text NOT NULL,
    payment_session_id text NOT NULL,
    metadata jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS "IDX_payment_payment_session_id_unique"
    ON payment (payment_session_id) WHERE deleted_at IS NULL;

CREATE TABLE IF NOT EXISTS capture (
    id text NOT NULL PRIMARY KEY,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    payment_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    created_by text,
    metadata jsonb
);

CREATE TABLE IF NOT EXISTS refund (
    id text NOT NULL PRIMARY KEY,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    payment_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    created_by text,
    metadata jsonb,
    refund_reason_id text,
    note text
);

CREATE SEQUENCE IF NOT EXISTS order_display_id_seq;

CREATE TABLE IF NOT EXISTS "order" (
    id text NOT NULL PRIMARY KEY,
    region_id text,
    display_id integer DEFAULT nextval('order_display_id_seq'),
    customer_id text,
    version integer NOT NULL DEFAULT 1,
    sales_channel_id text,
    status order_status_enum NOT NULL DEFAULT 'pending',
    is_draft_order boolean NOT NULL DEFAULT false,
    email text,
    currency_code text NOT NULL,
    shipping_address_id text,
    billing_address_id text,
    no_notification boolean,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    canceled_at timestamptz,
    custom_display_id text,
    locale text
);

CREATE TABLE IF NOT EXISTS order_cart (
    order_id varchar(255) NOT NULL,
    cart_id varchar(255) NOT NULL,
    id varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (order_id, cart_id)
);

CREATE TABLE IF NOT EXISTS order_payment_collection (
    order_id varchar(255) NOT NULL,
    payment_collection_id varchar(255) NOT NULL,
    id varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (order_id, payment_collection_id)
);

CREATE TABLE IF NOT EXISTS order_summary (
    id text NOT NULL PRIMARY KEY,
    order_id text NOT NULL,
    version integer NOT NULL DEFAULT 1,
    totals jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS order_transaction (
    id text NOT NULL PRIMARY KEY,
    order_id text NOT NULL,
    version integer NOT NULL DEFAULT 1,
    amount numeric NOT NULL,
    raw_amount jsonb NOT NULL,
    currency_code text NOT NULL,
    reference text,
    reference_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    return_id text,
    claim_id text,
    exchange_id text
);

CREATE TABLE IF NOT EXISTS region (
    id text NOT NULL PRIMARY KEY,
    name text NOT NULL,
    currency_code text NOT NULL,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    automatic_taxes boolean NOT NULL DEFAULT true
);

CREATE TABLE IF NOT EXISTS currency (
    code text NOT NULL PRIMARY KEY,
    symbol text NOT NULL,
    symbol_native text NOT NULL,
    decimal_digits integer NOT NULL DEFAULT 0,
    rounding numeric NOT NULL DEFAULT 0,
    raw_rounding jsonb NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS customer (
    id text NOT NULL PRIMARY KEY,
    company_name text,
    first_name text,
    last_name text,
    email text,
    phone text,
    has_account boolean NOT NULL DEFAULT false,
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    created_by text
);

CREATE TABLE IF NOT EXISTS payment_provider (
    id text NOT NULL PRIMARY KEY,
    is_enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz
);

CREATE TABLE IF NOT EXISTS region_payment_provider (
    region_id varchar(255) NOT NULL,
    payment_provider_id varchar(255) NOT NULL,
    id varchar(255) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    deleted_at timestamptz,
    PRIMARY KEY (region_id, payment_provider_id)
);
