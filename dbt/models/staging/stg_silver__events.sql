with

source as (

    select * from {{ source('silver', 'events') }}

),

renamed as (

    select
        -- ids
        event_id,
        user_id,
        product_id,
        product_key,

        -- dimensions
        event_type,
        page,
        source as channel,
        device,
        country as country_code,
        currency,
        campaign,

        -- numerics
        price,
        quantity,
        amount,
        amount_base,

        -- timestamps
        ts as event_ts,
        event_date,
        _ingestion_time as ingested_at,
        _run_id as silver_run_id

    from source

)

select * from renamed
