{#- No two rows share the values of `columns` (dbt_utils.unique_combination_of_columns without
    the package: this project installs no dbt packages, so it builds offline). -#}
{% test unique_combination_of_columns(model, columns) %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
