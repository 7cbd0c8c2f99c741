-- The orders fact at order-line grain, with the customer and product versions valid at order time.
with

lines as (

    select * from {{ ref('int_order_items__joined_to_versions') }}

),

final as (

    select
        -- ids
        order_id,
        line_no,
        customer_id,
        product_id,
        customer_version_key,
        product_version_key,

        -- dimensions as of the order
        segment,
        country_code,
        category,
        category_group,
        order_status,
        currency,

        -- numerics
        quantity,
        unit_price,
        line_amount,
        line_amount_base,

        -- flags
        customer_version_at_order_time,
        product_version_at_order_time,

        -- timestamps
        order_ts,
        order_date

    from lines

)

select * from final
