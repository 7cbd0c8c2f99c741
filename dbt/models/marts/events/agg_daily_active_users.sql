-- Daily active users: distinct users with at least one valid event that day (UTC).
with

user_days as (

    select * from {{ ref('int_events__aggregated_to_user_days') }}

),

final as (

    select
        event_date,
        count(*) as dau_count,
        current_timestamp as updated_at

    from user_days
    group by event_date

)

select * from final
