-- Rows per layer per run, from the reconciliation records every step writes.
with

recs as (

    select * from {{ ref('stg_ops__reconciliation') }}

),

final as (

    select
        run_id,
        step as layer,
        cast(sum(rows_in) as bigint) as rows_in,
        cast(sum(inserted) as bigint) as rows_inserted,
        cast(sum(updated) as bigint) as rows_updated,
        cast(sum(quarantined) as bigint) as rows_quarantined,
        cast(sum(duplicates) as bigint) as rows_duplicate,
        bool_and(balanced) as balanced,
        min(started_at) as started_at,
        max(finished_at) as finished_at

    from recs
    group by run_id, step

)

select * from final
