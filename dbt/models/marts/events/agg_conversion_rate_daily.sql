-- Daily conversion: users who purchased / daily active users.
with

user_days as (

    select * from {{ ref('int_events__aggregated_to_user_days') }}

),

daily as (

    select
        event_date,
        count(*) as dau_count,
        count(*) filter (where has_purchased) as purchase_users,
        sum(purchases) as total_purchases

    from user_days
    group by event_date

),

final as (

    select
        event_date,
        cast({{ safe_divide('purchase_users', 'dau_count') }} as double) as conversion_rate,
        cast(total_purchases as bigint) as total_purchases,
        cast(purchase_users as bigint) as purchase_users,
        dau_count,
        current_timestamp as updated_at

    from daily

)

select * from final
