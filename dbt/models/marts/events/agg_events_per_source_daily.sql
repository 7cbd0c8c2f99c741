-- Events per day and acquisition channel; events without a channel count under 'unknown'.
with

events as (

    select * from {{ ref('stg_silver__events') }}

),

final as (

    select
        event_date,
        coalesce(channel, 'unknown') as source,
        count(*) as event_count,
        current_timestamp as updated_at

    from events
    group by all

)

select * from final
