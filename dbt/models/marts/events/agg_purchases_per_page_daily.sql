-- Purchase events per day and page; purchases without a page count under 'unknown'.
with

purchases as (

    select * from {{ ref('stg_silver__events') }}
    where event_type = 'purchase'

),

final as (

    select
        event_date,
        coalesce(page, 'unknown') as page,
        count(*) as purchase_count,
        current_timestamp as updated_at

    from purchases
    group by all

)

select * from final
