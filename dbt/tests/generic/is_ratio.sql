{#- A share or rate: between 0 and 1 inclusive. -#}
{% test is_ratio(model, column_name) %}
select {{ column_name }} as value
from {{ model }}
where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}
