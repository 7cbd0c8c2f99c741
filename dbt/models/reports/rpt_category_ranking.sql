-- Categories ranked by revenue over the whole period, with their share of it. Equal revenues
-- are ranked by category code, so every rank is held by one category (rank 1 is the top one).
with

sales as (

    select * from {{ ref('agg_sales_by_category') }}

),

totals as (

    select
        category,
        any_value(category_group) as category_group,
        any_value(display_name) as display_name,
        sum(orders) as orders,
        sum(units) as units,
        sum(revenue) as revenue

    from sales
    group by category

),

final as (

    select
        cast(row_number() over (order by revenue desc, category) as integer) as revenue_rank,
        category,
        category_group,
        display_name,
        cast(orders as bigint) as orders,
        cast(units as bigint) as units,
        {{ money('revenue') }} as revenue,
        cast({{ safe_divide('revenue', 'sum(revenue) over ()') }} as double) as revenue_share

    from totals

)

select * from final
