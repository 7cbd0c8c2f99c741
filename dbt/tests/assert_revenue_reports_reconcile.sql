-- Every revenue report adds up to the same total as the fact (cancelled orders excluded).
with

fact as (
    select sum(line_amount_base) as revenue from {{ ref('fct_order_items') }} where order_status <> 'cancelled'
),
by_category as (select sum(revenue) as revenue from {{ ref('agg_sales_by_category') }}),
by_day_segment as (select sum(revenue) as revenue from {{ ref('rpt_revenue_daily') }}),
summary as (select total_revenue as revenue from {{ ref('rpt_executive_summary') }})

select 'agg_sales_by_category' as report, by_category.revenue, fact.revenue as expected
from by_category, fact where by_category.revenue <> fact.revenue
union all
select 'rpt_revenue_daily', by_day_segment.revenue, fact.revenue
from by_day_segment, fact where by_day_segment.revenue <> fact.revenue
union all
select 'rpt_executive_summary', summary.revenue, fact.revenue
from summary, fact where summary.revenue <> fact.revenue
