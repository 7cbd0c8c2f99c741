with

source as (

    select * from {{ source('silver', 'dim_product') }}

),

renamed as (

    select
        -- ids
        version_key as product_version_key,
        product_id,

        -- attributes of this version
        name as product_name,
        category,
        currency,
        price as list_price,
        change_hash,

        -- validity: [valid_from, valid_to), valid_to NULL = still open
        valid_from,
        valid_to,
        is_current,
        created_at

    from source

)

select * from renamed
