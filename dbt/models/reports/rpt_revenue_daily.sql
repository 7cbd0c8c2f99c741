-- Revenue by day x customer segment x customer country x product category, as of each order.
with

lines as (

    select * from {{ ref('fct_order_items') }}
    where order_status <> 'cancelled'

),

countries as (

    select * from {{ ref('stg_silver__countries') }}

),

final as (

    select
        lines.order_date,
        lines.segment,
        lines.country_code,
        coalesce(countries.country_name, lines.country_code) as country_name,
        lines.category,
        count(distinct lines.order_id) as orders,
        cast(sum(lines.quantity) as bigint) as units,
        {{ money('sum(lines.line_amount_base)') }} as revenue

    from lines
    left join countries
        on lines.country_code = countries.country_code
    group by all

)

select * from final
