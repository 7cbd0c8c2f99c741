-- The headline numbers of the whole period, always one row (zeros on an empty period). The
-- period runs from the first to the last day that has an order or an event, so it covers every
-- number below. Order figures exclude cancelled orders; event figures count every valid event;
-- the daily figures are over the days with at least one event.
with

lines as (

    select * from {{ ref('fct_order_items') }}
    where order_status <> 'cancelled'

),

conversion as (

    select * from {{ ref('agg_conversion_rate_daily') }}

),

ranking as (

    select * from {{ ref('rpt_category_ranking') }}

),

events as (

    select * from {{ ref('stg_silver__events') }}

),

order_totals as (

    select
        count(distinct order_id) as total_orders,
        count(distinct customer_id) as total_customers,
        sum(line_amount_base) as total_revenue,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date

    from lines

),

event_totals as (

    select
        count(*) as total_events,
        count(distinct user_id) as total_users,
        count(*) filter (where event_type = 'purchase') as total_purchases,
        sum(amount_base) filter (where event_type = 'purchase') as total_gmv,
        min(event_date) as first_event_date,
        max(event_date) as last_event_date

    from events

),

daily as (

    select
        coalesce(avg(dau_count), 0) as avg_dau,
        {{ safe_divide('sum(purchase_users)', 'sum(dau_count)') }} as avg_conversion_rate

    from conversion

),

top_category as (

    select display_name as top_category from ranking where revenue_rank = 1 limit 1

),

final as (

    select
        least(order_totals.first_order_date, event_totals.first_event_date) as period_start,
        greatest(order_totals.last_order_date, event_totals.last_event_date) as period_end,
        cast(order_totals.total_orders as bigint) as total_orders,
        cast(order_totals.total_customers as bigint) as total_customers,
        {{ money('coalesce(order_totals.total_revenue, 0)') }} as total_revenue,
        {{ money(safe_divide('order_totals.total_revenue', 'order_totals.total_orders')) }} as avg_order_value,
        cast(event_totals.total_events as bigint) as total_events,
        cast(event_totals.total_users as bigint) as total_users,
        cast(event_totals.total_purchases as bigint) as total_purchases,
        {{ money('coalesce(event_totals.total_gmv, 0)') }} as total_gmv,
        cast(round(daily.avg_dau, 1) as double) as avg_dau,
        cast(daily.avg_conversion_rate as double) as avg_conversion_rate,
        top_category.top_category,
        current_timestamp as updated_at

    from order_totals
    cross join event_totals
    cross join daily
    left join top_category on true

)

select * from final
