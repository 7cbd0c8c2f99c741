-- No category has negative revenue or units on any day,
-- and every non-cancelled order line has a positive amount.
select 'agg_sales_by_category' as model, category as key, revenue as value
from {{ ref('agg_sales_by_category') }}
where revenue < 0 or units <= 0

union all

select 'fct_order_items', cast(order_id as varchar) || '/' || cast(line_no as varchar), line_amount_base
from {{ ref('fct_order_items') }}
where order_status <> 'cancelled' and line_amount_base <= 0
