-- Rows silver quarantined, per reason (a row can have several reasons).
with

reasons as (

    select * from {{ ref('stg_silver__quarantine_events') }}

),

final as (

    select
        reason,
        count(*) as quarantined_rows,
        max(quarantined_at) as last_seen_at

    from reasons
    group by reason

)

select * from final
