with

source as (

    select * from {{ source('silver', 'orders') }}

),

renamed as (

    select
        -- ids
        order_id,
        customer_id,

        -- dimensions
        status as order_status,
        currency as order_currency,

        -- timestamps
        order_ts,
        cast(order_ts as date) as order_date,
        updated_at

    from source

)

select * from renamed
