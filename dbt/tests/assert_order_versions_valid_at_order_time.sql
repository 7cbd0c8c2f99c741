-- Point-in-time correctness: a line flagged "at order time" must really use a version whose
-- [valid_from, valid_to) holds order_ts, and only lines older than their key's first version may
-- be unflagged.
with

facts as (select * from {{ ref('fct_order_items') }}),
customers as (select * from {{ ref('stg_silver__customer_versions') }}),
first_customer as (select customer_id, min(valid_from) as first_from from customers group by 1)

select facts.order_id, facts.line_no
from facts
join customers on facts.customer_version_key = customers.customer_version_key
join first_customer on facts.customer_id = first_customer.customer_id
where (facts.customer_version_at_order_time
        and not {{ valid_at('customers', 'facts.order_ts') }})
   or (not facts.customer_version_at_order_time and facts.order_ts >= first_customer.first_from)
