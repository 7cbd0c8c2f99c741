with

source as (

    select * from {{ source('silver', 'ref_fx_rate') }}

),

renamed as (

    select
        currency,
        rate_to_base,
        valid_from,
        valid_to

    from source

)

select * from renamed
