with

source as (

    select * from {{ source('silver', 'dim_customer') }}

),

renamed as (

    select
        -- ids
        version_key as customer_version_key,
        customer_id,

        -- attributes of this version
        full_name,
        email,
        country as country_code,
        segment,
        change_hash,

        -- validity: [valid_from, valid_to), valid_to NULL = still open
        valid_from,
        valid_to,
        is_current,
        created_at

    from source

)

select * from renamed
