with

source as (

    select * from {{ source('silver', 'quarantine_events') }}

),

reasons as (

    -- one row per (quarantined row, reason)
    select
        run_id,
        source_system,
        source_file,
        source_line,
        unnest(reasons) as reason,
        quarantined_at

    from source

)

select * from reasons
