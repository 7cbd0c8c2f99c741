with

source as (

    select * from {{ source('ops', 'reconciliation') }}

),

renamed as (

    select
        run_id,
        step,
        source as source_table,
        target as target_table,
        rows_in,
        inserted,
        updated,
        unchanged,
        quarantined,
        duplicates,
        balanced,
        started_at,
        finished_at

    from source

)

select * from renamed
