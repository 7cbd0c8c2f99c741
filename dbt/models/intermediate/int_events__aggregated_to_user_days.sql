-- One row per user and day they were active (any valid event), with what they did that day:
-- the base of the daily event marts (active users, conversion).
with

events as (

    select * from {{ ref('stg_silver__events') }}

),

user_days as (

    select
        event_date,
        user_id,
        count(*) as events,
        count(*) filter (where event_type = 'purchase') as purchases,
        count(*) filter (where event_type = 'page_view') as page_views,
        count(*) filter (where event_type = 'purchase') > 0 as has_purchased,
        count(*) filter (where event_type = 'page_view') > 0 as has_viewed

    from events
    group by event_date, user_id

)

select * from user_days
