-- Daily sales per product category (the category as of the order),
-- mapped to reporting groups by the category_mapping seed. Cancelled orders are excluded.
with

lines as (

    select * from {{ ref('fct_order_items') }}
    where order_status <> 'cancelled'

),

category_mapping as (

    select * from {{ ref('category_mapping') }}

),

daily as (

    select
        order_date,
        category,
        count(distinct order_id) as orders,
        sum(quantity) as units,
        sum(line_amount_base) as revenue

    from lines
    group by order_date, category

),

final as (

    select
        daily.order_date,
        daily.category,
        coalesce(category_mapping.category_group, 'Unmapped') as category_group,
        coalesce(category_mapping.display_name, daily.category) as display_name,
        daily.orders,
        cast(daily.units as bigint) as units,
        {{ money('daily.revenue') }} as revenue

    from daily
    left join category_mapping
        on daily.category = category_mapping.category

)

select * from final
