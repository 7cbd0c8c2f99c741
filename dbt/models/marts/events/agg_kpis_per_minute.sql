-- KPIs per tumbling window (one minute by default): orders, GMV, users.
-- GMV is price x quantity of the purchases, in the base currency (silver's amount_base), so
-- events priced in different currencies add up.
with

events as (

    select * from {{ ref('stg_silver__events') }}

),

windowed as (

    select
        {{ window_start('event_ts') }} as window_start,
        *

    from events

),

aggregated as (

    select
        window_start,
        count(*) filter (where event_type = 'purchase') as orders,
        coalesce(sum(amount_base) filter (where event_type = 'purchase'), 0) as gmv,
        count(distinct user_id) filter (where event_type = 'purchase') as purchase_users,
        count(distinct user_id) filter (where event_type = 'page_view') as view_users,
        count(distinct user_id) as active_users

    from windowed
    group by window_start

),

final as (

    select
        window_start,
        {{ window_end('window_start') }} as window_end,
        orders,
        {{ money('gmv') }} as gmv,
        purchase_users,
        view_users,
        active_users,
        cast(cast(purchase_users as double) / greatest(view_users, 1) as double) as conversion_rate

    from aggregated

)

select * from final
