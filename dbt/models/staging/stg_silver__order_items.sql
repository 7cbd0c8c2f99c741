with

source as (

    select * from {{ source('silver', 'order_items') }}

),

renamed as (

    select
        -- ids
        order_id,
        line_no,
        product_id,

        -- numerics
        quantity,
        unit_price,

        -- timestamps
        updated_at

    from source

)

select * from renamed
