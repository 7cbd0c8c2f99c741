-- The daily marts are different cuts of the same events: they must agree day by day.
with

dau as (select * from {{ ref('agg_daily_active_users') }}),
conversion as (select * from {{ ref('agg_conversion_rate_daily') }}),
per_source as (
    select event_date, sum(event_count) as events from {{ ref('agg_events_per_source_daily') }} group by 1
),
per_page as (
    select event_date, sum(purchase_count) as purchases from {{ ref('agg_purchases_per_page_daily') }} group by 1
),
per_minute as (
    select cast(window_start as date) as event_date, sum(orders) as purchases
    from {{ ref('agg_kpis_per_minute') }} group by 1
)

select dau.event_date, 'dau differs' as problem
from dau full outer join conversion using (event_date)
where dau.dau_count is distinct from conversion.dau_count

union all

select conversion.event_date, 'purchases per page differ from total_purchases'
from conversion full outer join per_page using (event_date)
where coalesce(conversion.total_purchases, 0) <> coalesce(per_page.purchases, 0)

union all

select conversion.event_date, 'orders per minute differ from total_purchases'
from conversion full outer join per_minute using (event_date)
where coalesce(conversion.total_purchases, 0) <> coalesce(per_minute.purchases, 0)

union all

select per_source.event_date, 'a day has events but no active users'
from per_source left join dau using (event_date)
where per_source.events > 0 and dau.event_date is null
