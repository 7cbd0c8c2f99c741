-- Order lines with the customer and product versions that were valid when the order was placed
-- (SCD2 point-in-time join, macros/scd2.sql), the line amount in the base currency and the
-- category mapping. A line with no version valid at order_ts (an order keyed to a customer whose
-- first recorded version came later) gets the nearest version, flagged false.
with

orders as (

    select * from {{ ref('stg_silver__orders') }}

),

order_items as (

    select * from {{ ref('stg_silver__order_items') }}

),

customer_versions as (

    select * from {{ ref('stg_silver__customer_versions') }}

),

product_versions as (

    select * from {{ ref('stg_silver__product_versions') }}

),

fx_rates as (

    select * from {{ ref('stg_silver__fx_rates') }}

),

category_mapping as (

    select * from {{ ref('category_mapping') }}

),

customer_at_order as (

    {{ version_at(
        'orders', ['order_id'], 'customer_versions', 'customer_id', 'order_ts',
        ['customer_version_key', 'segment', 'country_code'], 'customer_version_at_order_time'
    ) }}

),

lines as (

    select
        order_items.*,
        orders.customer_id,
        orders.order_status,
        orders.order_ts,
        orders.order_date

    from order_items
    inner join orders
        on order_items.order_id = orders.order_id

),

product_at_order as (

    {{ version_at(
        'lines', ['order_id', 'line_no'], 'product_versions', 'product_id', 'order_ts',
        ['product_version_key', 'category', 'currency'], 'product_version_at_order_time'
    ) }}

),

joined as (

    select
        -- ids
        lines.order_id,
        lines.line_no,
        lines.customer_id,
        lines.product_id,
        customer_at_order.customer_version_key,
        product_at_order.product_version_key,

        -- dimensions (as of the order)
        customer_at_order.segment,
        customer_at_order.country_code,
        product_at_order.category,
        coalesce(category_mapping.category_group, 'Unmapped') as category_group,
        lines.order_status,
        product_at_order.currency as currency,

        -- numerics
        lines.quantity,
        lines.unit_price,
        {{ money('lines.quantity * lines.unit_price') }} as line_amount,
        {{ money('lines.quantity * lines.unit_price * fx_rates.rate_to_base') }} as line_amount_base,

        -- flags
        customer_at_order.customer_version_at_order_time,
        product_at_order.product_version_at_order_time,

        -- timestamps
        lines.order_ts,
        lines.order_date

    from lines
    left join customer_at_order
        on lines.order_id = customer_at_order.order_id
    left join product_at_order
        on lines.order_id = product_at_order.order_id
        and lines.line_no = product_at_order.line_no
    left join fx_rates
        on product_at_order.currency = fx_rates.currency
        and lines.order_date >= fx_rates.valid_from
        and lines.order_date < fx_rates.valid_to
    left join category_mapping
        on product_at_order.category = category_mapping.category

)

select * from joined
