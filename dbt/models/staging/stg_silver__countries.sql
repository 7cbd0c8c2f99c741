with

source as (

    select * from {{ source('silver', 'ref_country') }}

),

renamed as (

    select
        country_code,
        alpha_3 as country_alpha_3,
        name as country_name

    from source

)

select * from renamed
