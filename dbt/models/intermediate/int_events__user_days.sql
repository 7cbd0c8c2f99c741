-- One row per user and day with what the user did: the base of the daily event marts.
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
